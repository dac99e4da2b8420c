import { ConfigurationError } from "./errors";

type Env = Record<string, string | undefined>;

/** A required variable: missing or blank throws with its name. */
export function requireEnv(name: string, env: Env = process.env): string {
  const value = env[name]?.trim();
  if (!value)
    throw new ConfigurationError(`Missing required environment variable ${name}`, { name });
  return value;
}

/** An optional variable: blank counts as unset. */
export function optionalEnv(name: string, env: Env = process.env): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** A positive integer variable with a documented default. */
export function integerEnv(
  name: string,
  defaultValue: number,
  env: Env = process.env,
  { min = 1, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  const raw = optionalEnv(name, env);
  if (raw === undefined) return defaultValue;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigurationError(
      `Environment variable ${name} must be an integer from ${min} to ${max}, got "${raw}"`,
      { name },
    );
  }
  return value;
}

/** `true`/`1`/`yes` (any case) are true; anything else, or unset, is the default. */
export function booleanEnv(name: string, defaultValue: boolean, env: Env = process.env): boolean {
  const raw = optionalEnv(name, env);
  if (raw === undefined) return defaultValue;
  return isTruthyFlag(raw);
}

export function isTruthyFlag(value: string): boolean {
  return ["true", "1", "yes"].includes(value.trim().toLowerCase());
}
