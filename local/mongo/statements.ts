import { setImmediate as nextTurn } from "node:timers/promises";

/** Statements a write command runs before it lets other connections in. */
export const STATEMENTS_PER_TURN = 100;
/** ... or sooner, once it has held the event loop this long (slow statements). */
export const MAX_TURN_MS = 10;

/**
 * Runs `step(0)`, `step(1)`, ... in order, until `count` or until a step returns false
 * (an ordered write stopping at its first error), then returns `finish()`.
 *
 * A write command of thousands of statements would otherwise hold the event loop for
 * as long as it runs, and every other connection (the driver's heartbeats included:
 * a late `hello` makes it clear its pool) would wait. So between statements, after
 * {@link STATEMENTS_PER_TURN} of them or {@link MAX_TURN_MS}, it yields to the event loop.
 * Each statement still runs whole, and the statements of one command in their order; a
 * command that never had to yield returns synchronously. `abandoned()` is asked after
 * each pause: true stops the remaining statements (the store was reset meanwhile).
 */
export function runStatements<T>(
  count: number,
  step: (index: number) => boolean,
  finish: () => T,
  abandoned: () => boolean = () => false,
): T | Promise<T> {
  let index = 0;
  /** One turn's worth of statements; true when none are left. */
  const runTurn = (): boolean => {
    const last = Math.min(count, index + STATEMENTS_PER_TURN);
    const started = performance.now();
    while (index < last) {
      if (!step(index++)) return true;
      if (performance.now() - started >= MAX_TURN_MS) break;
    }
    return index >= count;
  };
  if (runTurn()) return finish();
  return (async () => {
    do {
      await nextTurn();
      if (abandoned()) break;
    } while (!runTurn());
    return finish();
  })();
}

export function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return value instanceof Promise;
}
