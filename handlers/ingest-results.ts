/**
 * ingestResults Lambda: S3 ObjectCreated (and its own continuation events) → ingest.
 * Composition root only: configuration, clients and adapters are made once per container
 * (cold start); the work lives in ./ingest/ (ingest-event.ts is where an event starts).
 */
import { composeIngest, createIngestClients } from "./ingest/compose";
import { loadIngestConfig } from "./ingest/config";
import { createIngestHandler } from "./ingest/ingest-event";

const config = loadIngestConfig();

export const handler = createIngestHandler(composeIngest(config, createIngestClients(config)));
