/**
 * A small, strict reader of tar archives (POSIX ustar, with the GNU long-name and pax path
 * extensions), enough to take the CIFAR-10 batches out of `cifar-10-binary.tar.gz` without a
 * dependency. An archive is 512-byte blocks: each member is a header block (name, octal size,
 * type flag, checksum) followed by its data padded to a block boundary; two zero blocks end it.
 * Every header's checksum is verified and every member must lie inside the bytes given, so a
 * corrupt or truncated archive is a `DataFormatError` naming the file, never a silent short read.
 */
import { DataFormatError } from './errors.ts'

const BLOCK = 512

function field(header: Uint8Array, offset: number, length: number): string {
  const bytes = header.subarray(offset, offset + length)
  const end = bytes.indexOf(0)
  return Buffer.from(end === -1 ? bytes : bytes.subarray(0, end)).toString('utf8')
}

/** Octal numeric field (NUL/space terminated), or GNU base-256 when the top bit is set. */
function numeric(header: Uint8Array, offset: number, length: number, file: string, what: string): number {
  const first = header[offset]!
  if (first & 0x80) {
    let v = first & 0x7f
    for (let i = 1; i < length; i++) v = v * 256 + header[offset + i]!
    return v
  }
  const text = field(header, offset, length).trim()
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) throw new DataFormatError(file, `corrupt tar header: ${what} field ${JSON.stringify(text)} is not octal`)
  return parseInt(text, 8)
}

function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

/** Parses a pax extended header's records (`<len> <key>=<value>\n`) for its `path`. */
function paxPath(data: Uint8Array): string | undefined {
  const text = Buffer.from(data).toString('utf8')
  for (const line of text.split('\n')) {
    const m = /^\d+ path=(.*)$/.exec(line)
    if (m) return m[1]
  }
  return undefined
}

/**
 * Lists the regular files of an (uncompressed) tar archive: path -> contents (views into
 * `bytes`, not copies). Directories, links and other member types are skipped. Throws a
 * `DataFormatError` for a bad checksum, a member running past the end, or a missing end marker.
 */
export function readTar(bytes: Uint8Array, file: string): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>()
  let pos = 0
  let longName: string | undefined
  for (;;) {
    if (pos + BLOCK > bytes.length) {
      throw new DataFormatError(file, `tar archive is truncated: it ends at byte ${bytes.length} without the end-of-archive marker`)
    }
    const header = bytes.subarray(pos, pos + BLOCK)
    if (isZeroBlock(header)) return files
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!
    const stored = numeric(header, 148, 8, file, 'checksum')
    if (stored !== sum) throw new DataFormatError(file, `corrupt tar header at byte ${pos}: checksum ${stored} but the header sums to ${sum}`)
    const size = numeric(header, 124, 12, file, 'size')
    const type = String.fromCharCode(header[156]!)
    const magic = field(header, 257, 6)
    // POSIX ustar ("ustar\0") has a name prefix at 345; old GNU ("ustar  ") keeps times there.
    const prefix = magic === 'ustar' ? field(header, 345, 155) : ''
    const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100))
    const start = pos + BLOCK
    if (start + size > bytes.length) {
      throw new DataFormatError(file, `tar archive is truncated: member ${name} needs ${size} bytes at ${start} but the archive has ${bytes.length}`)
    }
    const data = bytes.subarray(start, start + size)
    longName = undefined
    if (type === 'L') longName = Buffer.from(data).toString('utf8').replace(/\0+$/, '')
    else if (type === 'x') longName = paxPath(data)
    else if (type === '0' || type === '\0' || type === '7') files.set(name, data)
    pos = start + Math.ceil(size / BLOCK) * BLOCK
  }
}
