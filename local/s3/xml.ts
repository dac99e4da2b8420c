/**
 * Just enough XML for the S3 REST API: the SDK's request bodies are small, flat and
 * machine-written (tagging, multipart completion, batch delete), so a tag matcher
 * reads them; responses are built from escaped strings.
 */

export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";

const XML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  "\r": "&#13;",
};

export function escapeXml(value: string): string {
  return value.replace(/[&<>"'\r]/g, (char) => XML_ESCAPES[char] ?? char);
}

export function unescapeXml(value: string): string {
  return value.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, entity: string) => {
    switch (entity) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
      default:
        return String.fromCodePoint(
          entity.startsWith("#x")
            ? Number.parseInt(entity.slice(2), 16)
            : Number.parseInt(entity.slice(1), 10),
        );
    }
  });
}

/** `<name>value</name>` with the value escaped; undefined values are left out. */
export function element(name: string, value: string | number | boolean | undefined): string {
  if (value === undefined) return "";
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function document(root: string, body: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="${S3_XMLNS}">${body}</${root}>`;
}

/** The inner text of every `<name>...</name>` in `xml`, in order (no nesting of the same name). */
export function childBlocks(xml: string, name: string): string[] {
  const pattern = new RegExp(`<${name}(?:\\s[^>]*)?>([\\s\\S]*?)</${name}>`, "g");
  return [...xml.matchAll(pattern)].map((match) => match[1] ?? "");
}

/** The unescaped text of the first `<name>` in `xml`, or undefined. */
export function childText(xml: string, name: string): string | undefined {
  const block = childBlocks(xml, name)[0];
  if (block !== undefined) return unescapeXml(block);
  // An empty element such as <Value/>.
  return new RegExp(`<${name}(?:\\s[^>]*)?/>`).test(xml) ? "" : undefined;
}
