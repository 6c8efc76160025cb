/**
 * "Did you mean ...?" for misspelt names: the closest candidate by edit distance, offered
 * only when it is close enough to be a likely typo (at most a third of the name's length,
 * and at most 3 edits), so a suggestion is a help and never a guess.
 */

/**
 * Edit distance counting an insertion, deletion, substitution or swap of two adjacent
 * characters as one edit (optimal string alignment), since swaps are the commonest typo.
 */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)]
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(rows[i - 1]![j]! + 1, row[j - 1]! + 1, rows[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1)
      row[j] = d
    }
    rows.push(row)
  }
  return rows[a.length]![b.length]!
}

/** The candidate `name` was probably meant to be, or undefined when none is close. */
export function closest(name: string, candidates: Iterable<string>): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)))
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    if (c === name) continue
    const d = editDistance(name.toLowerCase(), c.toLowerCase())
    if (d <= limit && d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best
}

/** ` Did you mean "x"?` or the empty string, ready to append to a sentence. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const c = closest(name, candidates)
  return c === undefined ? '' : ` Did you mean ${JSON.stringify(c)}?`
}
