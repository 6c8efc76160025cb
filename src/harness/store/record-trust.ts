/**
 * What a store trusts in a run record it reads back, beyond its structure (run-record-check.ts):
 *
 * - Declared outputs: given the pipeline's stages, a record is accepted only when its output
 *   names and kinds are exactly its stage's declared outputs plus `result.json`. A record for a
 *   stage the pipeline does not declare is accepted on structure alone (registry views list old
 *   stages; nothing restores them).
 * - Signed records (optional, for teams sharing a bucket with writers they do not fully trust):
 *   with `CUSP_RECORD_KEY` (a shared secret: HMAC-SHA256) or `CUSP_RECORD_SIGNING_KEY` /
 *   `CUSP_RECORD_VERIFY_KEY` (an ed25519 private / public key, PEM) in the environment, every
 *   record a store publishes carries a signature over its canonical JSON, and every record it
 *   reads must carry a valid one: an unsigned or badly signed record is a miss (with a one-line
 *   warning), never restored.
 */
import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import { canonicalJson, sha256Hex } from '../canonical-json.ts'
import { stripControl } from '../redact.ts'
import type { OutputDecl, RunRecord } from '../types.ts'
import { checkRunRecord } from './run-record-check.ts'

/** The name of the signature field in a stored record (not part of `RunRecord`, stripped on read). */
export const SIGNATURE_FIELD = 'signature'

/** How records are signed and checked; one per process, shared by every layer of a store. */
export interface RecordTrust {
  /** The declared outputs of `stage` (result.json is added here), or undefined for an unknown stage. */
  outputsOf?: (stage: string) => readonly OutputDecl[] | undefined
  /** Signs on publish; absent: records are published unsigned. */
  signer?: (canonical: string) => string
  /** Verifies on read; present: every record must carry a valid signature. */
  verifier?: (canonical: string, signature: string) => boolean
  /** Where a refused record is reported (one line); the CLI gives its own stream (`warnOnceTo`); default this process's stderr, once per message. */
  warn?: (message: string) => void
}

/** The canonical bytes a signature covers: the record's canonical JSON without the signature field. */
export function signedText(record: RunRecord): string {
  const { [SIGNATURE_FIELD]: _sig, ...rest } = record as RunRecord & { [SIGNATURE_FIELD]?: unknown }
  return canonicalJson(JSON.parse(JSON.stringify(rest)))
}

/** The record as a store writes it: with a signature when `trust` signs. */
export function sealRecord(record: RunRecord, trust: RecordTrust): string {
  const { [SIGNATURE_FIELD]: _old, ...plain } = record as RunRecord & { [SIGNATURE_FIELD]?: unknown }
  const out = trust.signer === undefined ? plain : { ...plain, [SIGNATURE_FIELD]: trust.signer(signedText(plain as RunRecord)) }
  return `${JSON.stringify(out)}\n`
}

/**
 * `value` (parsed from a store) as a trusted record for `fingerprint`, or undefined (a miss) when
 * it is malformed, does not name exactly its stage's declared outputs, or fails its signature.
 * Signature failures are reported through `trust.warn`; a merely damaged record is a quiet miss.
 */
export function admitRecord(value: unknown, fingerprint: string, trust: RecordTrust, where: string): RunRecord | undefined {
  if (checkRunRecord(value, fingerprint) !== undefined) return undefined
  const record = value as RunRecord & { [SIGNATURE_FIELD]?: unknown }
  const problem = declaredOutputsProblem(record, trust) ?? signatureProblem(record, trust)
  if (problem !== undefined) {
    const say = trust.warn ?? defaultWarn
    say(
      `ignoring run record ${fingerprint.slice(0, 16)} of ${printable(record.instance)} in ${where}: ${stripControl(problem, { mark: '?', oneLine: true })}`,
    )
    return undefined
  }
  const { [SIGNATURE_FIELD]: _sig, ...plain } = record
  return plain as RunRecord
}

/** Why the record's outputs are not exactly its stage's declared ones, or undefined. */
export function declaredOutputsProblem(record: RunRecord, trust: RecordTrust): string | undefined {
  const declared = trust.outputsOf?.(record.stage)
  if (declared === undefined) return undefined
  const want = new Map<string, string>([...declared.map((o) => [o.name, o.kind] as const), ['result.json', 'file']])
  const got = Object.entries(record.outputs)
  const extra = got.filter(([n]) => !want.has(n)).map(([n]) => n)
  const missing = [...want.keys()].filter((n) => !Object.hasOwn(record.outputs, n))
  const wrongKind = got.filter(([n, o]) => want.has(n) && want.get(n) !== o.kind).map(([n]) => n)
  if (extra.length + missing.length + wrongKind.length === 0) return undefined
  const parts = [
    extra.length > 0 ? `undeclared outputs ${extra.map((n) => JSON.stringify(n)).join(', ')}` : '',
    missing.length > 0 ? `missing outputs ${missing.join(', ')}` : '',
    wrongKind.length > 0 ? `wrong kind for ${wrongKind.join(', ')}` : '',
  ]
  return `not stage ${record.stage}'s declared outputs (${parts.filter((p) => p !== '').join('; ')})`
}

/** Why the record's signature is refused (unsigned, or bad) when `trust` verifies, or undefined. */
export function signatureProblem(record: RunRecord & { [SIGNATURE_FIELD]?: unknown }, trust: RecordTrust): string | undefined {
  if (trust.verifier === undefined) return undefined
  const sig = record[SIGNATURE_FIELD]
  if (typeof sig !== 'string' || sig.length > 1024)
    return 'unsigned, and signed records are required (CUSP_RECORD_KEY / CUSP_RECORD_VERIFY_KEY is set)'
  let good = false
  try {
    good = trust.verifier(signedText(record), sig)
  } catch {
    good = false
  }
  return good ? undefined : 'bad signature (signed with another key, or altered after signing)'
}

/**
 * A `warn` that writes each distinct message once to `out` as `warning: <message>`. The CLI
 * passes its own error stream (open-store.ts `cliTrust`), so in-process callers capture it.
 */
export function warnOnceTo(out: { write(s: string): unknown }): (message: string) => void {
  const warned = new Set<string>()
  return (message) => {
    if (warned.has(message)) return
    warned.add(message)
    out.write(`warning: ${message}\n`)
  }
}

/** For a store opened without a `warn` (library use): this process's stderr, once per message. */
const defaultWarn = warnOnceTo(process.stderr)

/** A record field safe to print inside one line: control characters (C0, DEL, C1) replaced, length capped. */
function printable(s: string): string {
  return stripControl(s, { mark: '?', oneLine: true }).slice(0, 120)
}

/**
 * The signing policy the environment asks for: `CUSP_RECORD_KEY` (HMAC-SHA256, the key's
 * UTF-8 bytes; at least 16 characters), else `CUSP_RECORD_SIGNING_KEY` (ed25519 private key PEM:
 * signs, and verifies with its public half) and/or `CUSP_RECORD_VERIFY_KEY` (ed25519 public key
 * PEM: verifies only). Returns a one-line error for an unusable key.
 */
export function signingFromEnv(
  env: Record<string, string | undefined>,
): { ok: true; trust: Pick<RecordTrust, 'signer' | 'verifier'> } | { ok: false; message: string } {
  const hmacKey = env.CUSP_RECORD_KEY
  if (hmacKey !== undefined && hmacKey !== '') {
    if (hmacKey.length < 16)
      return { ok: false, message: 'CUSP_RECORD_KEY is shorter than 16 characters: use a long random secret (e.g. openssl rand -hex 32)' }
    const id = sha256Hex(`cusp-record-key:${hmacKey}`).slice(0, 12)
    const mac = (text: string) => createHmac('sha256', hmacKey).update(text).digest('hex')
    return {
      ok: true,
      trust: {
        signer: (text) => `hmac-sha256:${id}:${mac(text)}`,
        verifier: (text, sig) => {
          const want = Buffer.from(`hmac-sha256:${id}:${mac(text)}`)
          const got = Buffer.from(sig)
          return got.length === want.length && timingSafeEqual(got, want)
        },
      },
    }
  }
  const priv = env.CUSP_RECORD_SIGNING_KEY
  const pub = env.CUSP_RECORD_VERIFY_KEY
  if ((priv ?? '') === '' && (pub ?? '') === '') return { ok: true, trust: {} }
  let privateKey: KeyObject | undefined
  let publicKey: KeyObject
  try {
    privateKey = priv !== undefined && priv !== '' ? createPrivateKey(priv) : undefined
    publicKey = pub !== undefined && pub !== '' ? createPublicKey(pub) : createPublicKey(privateKey!)
  } catch (e) {
    return {
      ok: false,
      message: `CUSP_RECORD_SIGNING_KEY / CUSP_RECORD_VERIFY_KEY is not a usable PEM key: ${(e as Error).message.split('\n')[0]}`,
    }
  }
  if (publicKey.asymmetricKeyType !== 'ed25519' || (privateKey !== undefined && privateKey.asymmetricKeyType !== 'ed25519')) {
    return {
      ok: false,
      message: 'CUSP_RECORD_SIGNING_KEY / CUSP_RECORD_VERIFY_KEY must be ed25519 keys (openssl genpkey -algorithm ed25519)',
    }
  }
  return {
    ok: true,
    trust: {
      ...(privateKey !== undefined
        ? { signer: (text: string) => `ed25519:${sign(null, Buffer.from(text), privateKey).toString('base64')}` }
        : {}),
      verifier: (text, sig) =>
        sig.startsWith('ed25519:') && verify(null, Buffer.from(text), publicKey, Buffer.from(sig.slice('ed25519:'.length), 'base64')),
    },
  }
}
