import { randomInt } from "node:crypto";
import { BSON, type Document, Long } from "mongodb";
import { CommandError } from "./errors.js";
import { MAX_BSON_OBJECT_SIZE } from "./wire.js";

export const DEFAULT_FIRST_BATCH_SIZE = 101;
/** Leave room for the reply envelope around a batch. */
const MAX_BATCH_BYTES = MAX_BSON_OBJECT_SIZE - 64 * 1024;

interface OpenCursor {
  id: Long;
  namespace: string;
  source: Iterator<Document>;
  /** Documents still allowed by the command's limit (Infinity without one). */
  remaining: number;
  /** A document read from the source that did not fit into the previous batch. */
  pending?: Document;
}

/**
 * Server-side cursors. A cursor holds a lazy iterator over the live collection, so a
 * large result is never copied whole unless the command needs it (sort, group...).
 */
export class CursorRegistry {
  private readonly open = new Map<string, OpenCursor>();

  /** Builds the `cursor` reply field: first batch, and a cursor id when more may follow. */
  firstBatch(
    namespace: string,
    source: Iterator<Document>,
    options: { batchSize?: number; limit?: number; singleBatch?: boolean } = {},
  ): Document {
    const remaining = options.limit && options.limit > 0 ? options.limit : Number.POSITIVE_INFINITY;
    const cursor: OpenCursor = { id: Long.ZERO, namespace, source, remaining };
    const batchSize = options.batchSize ?? DEFAULT_FIRST_BATCH_SIZE;
    const { batch, exhausted } = this.takeBatch(cursor, batchSize);
    if (!exhausted && !options.singleBatch) {
      cursor.id = this.newId();
      this.open.set(cursor.id.toString(), cursor);
    }
    return { firstBatch: batch, id: cursor.id, ns: namespace };
  }

  getMore(id: Long, namespace: string, batchSize: number | undefined): Document {
    const cursor = this.open.get(id.toString());
    if (!cursor) throw new CommandError(43, `cursor id ${id.toString()} not found`);
    if (cursor.namespace !== namespace) {
      throw new CommandError(
        13,
        `Requested getMore on namespace '${namespace}', but cursor belongs to a different namespace ${cursor.namespace}`,
        {},
        "Unauthorized",
      );
    }
    const { batch, exhausted } = this.takeBatch(cursor, batchSize ?? 0);
    if (exhausted) this.open.delete(id.toString());
    return { nextBatch: batch, id: exhausted ? Long.ZERO : cursor.id, ns: namespace };
  }

  kill(ids: readonly Long[]): { killed: Long[]; notFound: Long[] } {
    const killed: Long[] = [];
    const notFound: Long[] = [];
    for (const id of ids) {
      if (this.open.delete(id.toString())) killed.push(id);
      else notFound.push(id);
    }
    return { killed, notFound };
  }

  clear(): void {
    this.open.clear();
  }

  get size(): number {
    return this.open.size;
  }

  /** batchSize 0 means "as many as fit in one reply", as for getMore without batchSize. */
  private takeBatch(
    cursor: OpenCursor,
    batchSize: number,
  ): { batch: Document[]; exhausted: boolean } {
    const batch: Document[] = [];
    const wanted = batchSize > 0 ? batchSize : Number.POSITIVE_INFINITY;
    let bytes = 0;
    while (batch.length < wanted && cursor.remaining > 0) {
      let doc = cursor.pending;
      cursor.pending = undefined;
      if (doc === undefined) {
        const next = cursor.source.next();
        if (next.done) return { batch, exhausted: true };
        doc = next.value as Document;
      }
      const size = BSON.calculateObjectSize(doc);
      if (batch.length > 0 && bytes + size > MAX_BATCH_BYTES) {
        cursor.pending = doc;
        break;
      }
      batch.push(doc);
      cursor.remaining--;
      bytes += size;
    }
    if (cursor.remaining <= 0) return { batch, exhausted: true };
    return { batch, exhausted: false };
  }

  private newId(): Long {
    let id: Long;
    do {
      id = Long.fromNumber(randomInt(1, 2 ** 47) * 1024 + randomInt(0, 1024));
    } while (this.open.has(id.toString()));
    return id;
  }
}
