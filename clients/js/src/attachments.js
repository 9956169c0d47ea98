// Sample files for the attachment journeys, built as bytes (as tests/attachment_support.py builds them), and a
// signed link fetched as an <img> tag would fetch it.
import { crc32, deflateSync } from "node:zlib";

/** A real PNG of the given size (black RGB pixels): signature, IHDR, one IDAT, IEND, each chunk with its CRC. */
export function png(width, height) {
  const chunk = (kind, data) => {
    const typed = Buffer.concat([Buffer.from(kind, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per channel, RGB, deflate, no filter, no interlace
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(3 * width)]); // filter type 0, then the pixels
  const pixels = deflateSync(Buffer.concat(Array.from({ length: height }, () => row)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", pixels),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** An MP3 as its first bytes read: an ID3v2 header, then an MPEG-1 layer III frame header. */
export const MP3 = Buffer.concat([
  Buffer.from("ID3\x04\x00\x00\x00\x00\x00\x00", "latin1"),
  Buffer.from([0xff, 0xfb, 0x90, 0x64]),
  Buffer.alloc(413),
]);

/** A signed download link (absolute, or a path from the server's root) fetched with no header. */
export async function download(server, url) {
  const response = await fetch(new URL(url, server.httpUrl));
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    bytes: Buffer.from(await response.arrayBuffer()),
  };
}
