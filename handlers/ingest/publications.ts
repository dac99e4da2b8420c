/** The spec's built-in map (§8): tracking `publication_code` → `publicationId`. */
export const BUILT_IN_PUBLICATION_CODES: Readonly<Record<string, number>> = Object.freeze({
  chireader: 1035,
  suntimes: 1038,
  tribune: 1043,
  wbez: 1047,
  wvon: 1048,
  wrll: 1054,
  chirp: 1056,
  e3radio: 1058,
  ssweekly: 1064,
  triibe: 1065,
  ndigo: 1067,
  hydepark: 1037,
  evanstonrt: 1044,
  streetwise: 1055,
});

/** Validates a `PUBLICATION_CODE_MAP`-shaped value: codes (any case) → integer ids. */
export function parsePublicationCodeMap(value: unknown): Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("expected a JSON object");
  }
  const map: Record<string, number> = {};
  for (const [code, id] of Object.entries(value)) {
    if (typeof id !== "number" || !Number.isInteger(id)) {
      throw new Error(`publicationId for "${code}" is not an integer`);
    }
    map[code.trim().toLowerCase()] = id;
  }
  return map;
}

/** A `publications` document that carries a `publicationCode`. */
export interface PublicationCodeDocument {
  publicationCode?: unknown;
  publicationId?: unknown;
}

/**
 * Resolves publication codes case-insensitively. Precedence, highest first:
 * 1. `PUBLICATION_CODE_MAP` (operator override, e.g. a quick fix without a data change);
 * 2. the `publications` collection's `publicationCode` field (the hub's own data);
 * 3. the spec's built-in map.
 * A code claimed by several publications with different ids is ambiguous in the
 * collection and is left to the lower layer (reported in `conflicts`).
 */
export class PublicationDirectory {
  private readonly codes = new Map<string, number>();
  readonly conflicts: string[] = [];

  constructor(
    collectionDocuments: readonly PublicationCodeDocument[],
    overrides: Readonly<Record<string, number>>,
    builtIn: Readonly<Record<string, number>> = BUILT_IN_PUBLICATION_CODES,
  ) {
    for (const [code, id] of Object.entries(builtIn)) this.codes.set(code.toLowerCase(), id);
    const fromCollection = new Map<string, number | null>();
    for (const doc of collectionDocuments) {
      if (typeof doc.publicationCode !== "string" || typeof doc.publicationId !== "number")
        continue;
      const code = doc.publicationCode.trim().toLowerCase();
      if (code === "") continue;
      const previous = fromCollection.get(code);
      if (previous === undefined) fromCollection.set(code, doc.publicationId);
      else if (previous !== null && previous !== doc.publicationId) {
        fromCollection.set(code, null);
        this.conflicts.push(code);
      }
    }
    for (const [code, id] of fromCollection) if (id !== null) this.codes.set(code, id);
    for (const [code, id] of Object.entries(overrides)) this.codes.set(code.toLowerCase(), id);
  }

  /** The publicationId of a code (any case), or undefined when unknown. */
  lookup(code: string): number | undefined {
    return this.codes.get(code.toLowerCase());
  }
}
