// Connection strings carry credentials; nothing we log, report or throw may show them.
const CONNECTION_STRING = /mongodb(?:\+srv)?:\/\/[^\s"'`]+/gi;

/** Replaces every MongoDB connection string in `text` with a fixed marker. */
export function redactSecrets(text: string): string {
  return text.replace(CONNECTION_STRING, "mongodb://[redacted]");
}
