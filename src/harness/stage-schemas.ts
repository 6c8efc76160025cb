/**
 * Loads and compiles each stage implementation's params schema
 * (`schemas/stages/<impl>.params.schema.json`) through the injected reader. Compiled
 * validators are cached by schema text for the life of the process, so analyzing a
 * 200-instance pipeline compiles each schema once and a re-analysis compiles nothing.
 * Validators fill defaults (`useDefaults`) and report every error (`allErrors`).
 */
import { Ajv } from 'ajv'
import type { ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { Result } from './types.ts'
import { fail, ok } from './types.ts'

const options = { allErrors: true, useDefaults: true, verbose: true, strict: false, addUsedSchema: false, allowUnionTypes: true } as const
let draft07: Ajv | undefined
let draft2020: Ajv2020 | undefined
const cache = new Map<string, Result<ValidateFunction, string>>()

/**
 * The process's one draft-07 Ajv (all errors, defaults filled, verbose errors). Shared with
 * the analyzer's pipeline schema because each instance compiles the draft-07 meta-schema
 * once, which is a noticeable part of a cold CLI start.
 */
export function sharedAjv(): Ajv {
  draft07 ??= new Ajv(options)
  return draft07
}

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
    if (dialect.includes('2020-12')) {
      draft2020 ??= new Ajv2020(options)
      return ok(draft2020.compile(schema))
    }
    return ok(sharedAjv().compile(schema))
  } catch (e) {
    return fail(`is not a valid JSON Schema (${e instanceof Error ? e.message : String(e)})`)
  }
}
