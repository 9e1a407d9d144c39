// The line splitter on the chunkings a pipe really produces.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LineSplitter } from "../src/lines.js";

function feed(chunks) {
  const splitter = new LineSplitter();
  return chunks.flatMap((chunk) => splitter.push(Buffer.from(chunk)));
}

test("several lines in one chunk, and a line spread over many", () => {
  assert.deepEqual(feed(['{"a":1}\n{"b":2}\n{"c"', ":", "3}", "\n"]), ['{"a":1}', '{"b":2}', '{"c":3}']);
});

test("a line is only handed over once its newline has arrived", () => {
  assert.deepEqual(feed(['{"unfinished":']), []);
});

test("a UTF-8 character cut between two chunks", () => {
  const bytes = Buffer.from('{"prompt":"chat noir 🐈 é"}\n');
  const cat = bytes.indexOf(Buffer.from("🐈"));
  for (const cut of [cat + 1, cat + 2, cat + 3]) {
    assert.deepEqual(feed([bytes.subarray(0, cut), bytes.subarray(cut)]), ['{"prompt":"chat noir 🐈 é"}']);
  }
});

test("one byte at a time", () => {
  const text = '{"x":"ümlaut"}\n{"y":[1,2]}\n';
  assert.deepEqual(feed([...Buffer.from(text)].map((byte) => [byte])), ['{"x":"ümlaut"}', '{"y":[1,2]}']);
});

test("a megabyte line in 64 KiB chunks", () => {
  const line = JSON.stringify({ outputs: ["A".repeat(1 << 20)] });
  const bytes = Buffer.from(`${line}\n`);
  const chunks = [];
  for (let start = 0; start < bytes.length; start += 65536) chunks.push(bytes.subarray(start, start + 65536));
  assert.deepEqual(feed(chunks), [line]);
});
