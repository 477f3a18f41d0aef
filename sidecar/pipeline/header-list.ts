// The upstream request's headers: ordered [name, value] pairs as the app wrote them (case and order kept, so
// an unchanged request reaches the provider as it was sent). Names compare case-insensitively.

export class HeaderList {
  private readonly pairs: [string, string][] = [];

  constructor(raw: readonly string[] = []) {
    for (let i = 0; i + 1 < raw.length; i += 2) this.pairs.push([raw[i]!, raw[i + 1]!]);
  }

  /** The first value of `name`. */
  get(name: string): string | undefined {
    const lower = name.toLowerCase();
    for (const [n, v] of this.pairs) if (n.toLowerCase() === lower) return v;
    return undefined;
  }

  getAll(name: string): string[] {
    const lower = name.toLowerCase();
    return this.pairs.filter(([n]) => n.toLowerCase() === lower).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  /** Sets `name` to one value: the first occurrence keeps its place, others are removed; appended when absent. */
  set(name: string, value: string): void {
    const lower = name.toLowerCase();
    let done = false;
    for (let i = 0; i < this.pairs.length; i++) {
      if (this.pairs[i]![0].toLowerCase() !== lower) continue;
      if (done) this.pairs.splice(i--, 1);
      else {
        this.pairs[i]![1] = value;
        done = true;
      }
    }
    if (!done) this.pairs.push([name, value]);
  }

  /** Removes every value of `name`; true when there was one. */
  delete(name: string): boolean {
    const lower = name.toLowerCase();
    const before = this.pairs.length;
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i]![0].toLowerCase() === lower) this.pairs.splice(i, 1);
    return this.pairs.length !== before;
  }

  entries(): readonly (readonly [string, string])[] {
    return this.pairs;
  }

  /** Flat [name, value, …] as undici takes it. */
  toRaw(): string[] {
    const out: string[] = [];
    for (const [n, v] of this.pairs) out.push(n, v);
    return out;
  }
}
