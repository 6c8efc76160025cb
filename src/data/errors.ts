/**
 * The one error type of the data layer. Readers of datasets and tensor files meet bad input
 * (a truncated download, a wrong magic number, an MD5 mismatch); each such case throws a
 * `DataFormatError` carrying the file it came from, so the prepare-data stage can report
 * "what was wrong, where" in one line and the tests can tell bad input from a bug.
 */

/** A data file (or download) that is malformed, truncated, or not what was expected. */
export class DataFormatError extends Error {
  /** The file, URL or buffer name the problem is in. */
  readonly file: string

  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`)
    this.name = 'DataFormatError'
    this.file = file
  }
}
