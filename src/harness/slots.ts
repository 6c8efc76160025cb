/**
 * A weighted semaphore over `jobs` slots: a stage process takes as many slots as the CPUs its
 * instance declares (`resources.cpu`, at least 1, at most all), so two 2-CPU stages do not
 * share a 2-core machine. Waiters are served first come, first served.
 */
export class Slots {
  private readonly waiting: { n: number; go: () => void }[] = []
  constructor(
    private free: number,
    readonly capacity: number,
  ) {}
  async acquire(n: number): Promise<void> {
    if (this.waiting.length === 0 && this.free >= n) {
      this.free -= n
      return
    }
    await new Promise<void>((go) => this.waiting.push({ n, go }))
  }
  release(n: number): void {
    this.free += n
    for (let w = this.waiting[0]; w !== undefined && this.free >= w.n; w = this.waiting[0]) {
      this.waiting.shift()
      this.free -= w.n
      w.go()
    }
  }
}
