import { Aggregator } from "mingo/aggregator";
import { Context } from "mingo/core";
import * as accumulatorOperators from "mingo/operators/accumulator";
import * as expressionOperators from "mingo/operators/expression";
import * as pipelineOperators from "mingo/operators/pipeline";
import * as projectionOperators from "mingo/operators/projection";
import * as queryOperators from "mingo/operators/query";
import * as windowOperators from "mingo/operators/window";
import type { Options } from "mingo/types";
import { isPlainObject } from "./values.js";

type OperatorTable = Record<string, unknown>;

// Plain copies: mingo copies its operator tables for every Query/Aggregator it builds, and
// copying the module namespace objects (getter per export) costs tens of µs each time.
const TABLES = {
  accumulator: { ...accumulatorOperators } as OperatorTable,
  expression: { ...expressionOperators } as OperatorTable,
  pipeline: { ...pipelineOperators } as OperatorTable,
  projection: { ...projectionOperators } as OperatorTable,
  query: { ...queryOperators } as OperatorTable,
  window: { ...windowOperators } as OperatorTable,
};

type ContextTables = Parameters<typeof Context.init>[0];

/** Every operator mingo has: for commands that run once (find, aggregate). */
export const FULL_CONTEXT = Context.init(TABLES as ContextTables);

/** Query and projection operators only: enough for filters without `$expr`. */
const QUERY_CONTEXT = Context.init({
  query: TABLES.query,
  projection: TABLES.projection,
} as ContextTables);

/** The stages an update pipeline may use. */
const UPDATE_STAGES = ["$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith"];

const cache = new Map<string, Context>();
const CACHE_LIMIT = 500;

/** `$`-prefixed keys anywhere in an expression tree: the operators it can look up. */
function collectOperators(tree: unknown, into: Set<string>): void {
  if (Array.isArray(tree)) {
    for (const item of tree) collectOperators(item, into);
    return;
  }
  if (!isPlainObject(tree)) return;
  for (const [key, value] of Object.entries(tree)) {
    if (key.startsWith("$")) into.add(key);
    if (key !== "$literal") collectOperators(value, into);
  }
}

function pick(table: OperatorTable, names: Iterable<string>): OperatorTable {
  const picked: OperatorTable = {};
  for (const name of names) if (name in table) picked[name] = table[name];
  return picked;
}

/**
 * A context holding all query and projection operators plus exactly the expression,
 * accumulator and stage operators named in `tree`: mingo only looks operators up by the
 * names written in the query, so nothing else can be needed. Small contexts are cheap to
 * copy, which keeps per-statement work (filters, pipeline updates) in the µs range.
 */
export function contextFor(tree: unknown, withUpdateStages = false): Context {
  const names = new Set<string>();
  collectOperators(tree, names);
  if (withUpdateStages) for (const stage of UPDATE_STAGES) names.add(stage);
  const needsExpressions = names.has("$expr") || [...names].some((name) => !(name in TABLES.query));
  if (!needsExpressions) return QUERY_CONTEXT;
  // Names like $gte or $in are both query and expression operators: pick from every table.
  const sorted = [...names].sort();
  const key = sorted.join(",");
  let context = cache.get(key);
  if (!context) {
    context = Context.init({
      query: TABLES.query,
      projection: TABLES.projection,
      expression: pick(TABLES.expression, sorted),
      accumulator: pick(TABLES.accumulator, sorted),
      pipeline: pick(TABLES.pipeline, sorted),
      window: pick(TABLES.window, sorted),
    } as ContextTables);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(key, context);
  }
  return context;
}

/** mingo's `ComputeOptions`: the options object its operators receive (not exported by name). */
type ComputeOptions = Options & { readonly now: Date };
type ComputeOptionsClass = { init(options: Partial<Options>): ComputeOptions };

/**
 * The options mingo builds for itself from `{context, scriptEnabled}`, taken from inside
 * a throwaway pipeline stage once. Handing mingo such an instance (instead of plain
 * options) makes it share the operator tables instead of copying all of them for every
 * Aggregator, and its clock (`$$NOW`) can be fixed per command.
 */
const TEMPLATE: ComputeOptions = (() => {
  let captured: ComputeOptions | undefined;
  const capturing = Context.init({
    pipeline: {
      $captureOptions: (collection: unknown, _expr: unknown, options: ComputeOptions) => {
        captured = options;
        return collection;
      },
    },
  } as unknown as ContextTables);
  new Aggregator([{ $captureOptions: 1 }], { context: capturing }).run([]);
  if (captured === undefined) throw new Error("mingo did not pass its options to a stage");
  const optionsClass = captured.constructor as unknown as ComputeOptionsClass;
  return optionsClass.init({ context: FULL_CONTEXT, scriptEnabled: false });
})();

/** What one command evaluates its update pipelines with. */
export interface CommandClock {
  /** The command's instant: `$$NOW` of every statement, and `$currentDate`. */
  now: Date;
  /** Every operator mingo has, scripts disabled, `$$NOW` fixed to `now`. */
  options: Options;
}

/**
 * A fresh clock for one command. mingo reads the clock once per options object and keeps
 * the reading in it (copies made while evaluating inherit it), so every statement of the
 * command sees one `$$NOW`, as in mongod, without rewriting each statement's pipeline.
 */
export function commandClock(): CommandClock {
  const options = (TEMPLATE.constructor as unknown as ComputeOptionsClass).init(TEMPLATE);
  return { now: options.now, options };
}
