// jStat (npm `jstat`) ships no types; the audit uses only Student's t inverse CDF.
declare module 'jstat' {
  const jstat: { jStat: { studentt: { inv: (p: number, df: number) => number } } }
  export default jstat
}
