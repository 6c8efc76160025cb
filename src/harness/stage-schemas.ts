/**
 * Loads and compiles each stage implementation's params schema
 * (`schemas/stages/<impl>.params.schema.json`) through the injected reader. Compiled
 * validators are cached by schema text for the life of the process, so analyzing a
 * 200-instance pipeline compiles each schema once and a re-analysis compiles nothing, and on
 * disk (validator-cache.ts), so a later process loads ajv only for a schema it has not seen.
 * Validators fill defaults (`useDefaults`) and report every error (`allErrors`).
 */
import type { ValidateFunction } from 'ajv'
import type { Result } from './types.ts'
import { fail, ok } from './types.ts'
import { cachedValidator, type ValidatorOptions } from './validator-cache.ts'

/**
 * The ajv options of every params schema and of the pipeline schema (all errors, defaults
 * filled, verbose errors for the messages). Shared so both reuse one ajv, and so one
 * meta-schema compile per process, when the on-disk validator cache misses.
 */
export const SCHEMA_OPTIONS: ValidatorOptions = {
  allErrors: true,
  useDefaults: true,
  verbose: true,
  strict: false,
  addUsedSchema: false,
  allowUnionTypes: true,
}
const cache = new Map<string, Result<ValidateFunction, string>>()

/** Path of an implementation's params schema, relative to the project root. */
export function paramsSchemaPath(impl: string): string {
  return `schemas/stages/${impl}.params.schema.json`
}

/**
 * Compile a params schema from its text. Fails with a sentence when the text is not JSON,
 * not an object, or not a valid JSON Schema (draft-07 by default; 2020-12 when its
 * `$schema` says so). Mutates nothing; results are cached by text.
 */
export function compileParamsSchema(text: string): Result<ValidateFunction, string> {
  const hit = cache.get(text)
  if (hit !== undefined) return hit
  const result = compile(text)
  cache.set(text, result)
  return result
}

function compile(text: string): Result<ValidateFunction, string> {
  let schema: unknown
  try {
    schema = JSON.parse(text)
  } catch (e) {
    return fail(`is not valid JSON (${e instanceof Error ? e.message : String(e)})`)
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    return fail('must contain a JSON object (a JSON Schema)')
  }
  const dialect = String((schema as { $schema?: unknown }).$schema ?? '')
  try {
    return ok(cachedValidator(text, schema, dialect.includes('2020-12') ? '2020-12' : 'draft-07', SCHEMA_OPTIONS))
  } catch (e) {
    return fail(`is not a valid JSON Schema (${e instanceof Error ? e.message : String(e)})`)
  }
}
