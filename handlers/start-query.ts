/**
 * startQuery Lambda: starts the nightly Athena query (or a requested one) and
 * returns; it never waits for the query. Also restarts failed queries: Athena's
 * state-change events and the retry queue's messages come here too.
 * Composition root only: configuration, clients and adapters are made once per container
 * (cold start); the work lives in ./start/ (start-handler.ts dispatches each event).
 */
import { loadStartConfig } from "./start/config";
import { composeStart, createStartClients, createStartHandler } from "./start/start-handler";

export type { StartQueryOutput } from "./start/start-handler";

export const handler = createStartHandler(composeStart(loadStartConfig(), createStartClients()));
