const NEWLINE = 0x0a;

/**
 * Splits a byte stream into lines. A pipe hands out chunks of any size: one line (a response with
 * images can be megabytes) may span many chunks, and one chunk may hold many lines. Lines are
 * joined as bytes and only then decoded, so a UTF-8 character cut between two chunks survives.
 */
export class LineSplitter {
  #parts = [];

  /** Takes one chunk; returns the lines it completed, decoded, without their newline. */
  push(chunk) {
    const lines = [];
    let start = 0;
    let end;
    while ((end = chunk.indexOf(NEWLINE, start)) !== -1) {
      const tail = chunk.subarray(start, end);
      const line = this.#parts.length ? Buffer.concat([...this.#parts, tail]) : tail;
      lines.push(line.toString("utf8"));
      this.#parts = [];
      start = end + 1;
    }
    if (start < chunk.length) this.#parts.push(chunk.subarray(start));
    return lines;
  }
}
