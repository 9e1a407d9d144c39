// Image params as the protocol carries them: bytes become base64, strings pass as they are.
import assert from "node:assert/strict";
import { test } from "node:test";

import { encodeImages } from "../src/diffusion.js";

test("ref_images: each image given as bytes becomes base64, a string is sent as is", () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
  const encoded = encodeImages({ prompt: "p", ref_images: [png, Buffer.from("GIF8"), "data:image/png;base64,AAAA"] });
  assert.deepEqual(encoded.ref_images, ["iVBORw==", "R0lGOA==", "data:image/png;base64,AAAA"]);
  assert.equal("init_image" in encoded, false, "no image param is added where none was given");
});
