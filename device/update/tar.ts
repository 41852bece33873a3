/**
 * The release artifact's format: a gzip'd ustar archive of plain files (the agent bundle's
 * folder). Written by `npm run release` (scripts/release.mjs) and read by the agent, here, so
 * both agree byte for byte and the device needs no `tar` binary.
 *
 * The reader accepts regular files and folders only, with relative names that stay inside the
 * destination: no links, devices, absolute paths or `..` (an archive is only unpacked after its
 * signature and hash were checked, but a reader that cannot be steered outside its folder costs
 * nothing). Times and owners are fixed, so the same folder always packs to the same bytes.
 */
import { gunzipSync, gzipSync } from "node:zlib";

const BLOCK = 512;
/** Unpacked, an agent bundle is ~1 MB; far past that something is wrong. */
export const MAX_UNPACKED_BYTES = 128 * 1024 * 1024;

export type TarEntry = { name: string; data: Uint8Array };

/** Files (name relative, `/`-separated) → .tar.gz bytes. Names up to 100 characters. */
export function packTarGz(files: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) {
    checkName(f.name);
    if (Buffer.byteLength(f.name) > 100) throw new Error(`tar: name too long for this format (≤ 100 bytes): ${f.name}`);
    const header = Buffer.alloc(BLOCK, 0);
    header.write(f.name, 0, 100, "utf8");
    header.write("0000644\0", 100, 8, "ascii"); // mode
    header.write("0000000\0", 108, 8, "ascii"); // uid
    header.write("0000000\0", 116, 8, "ascii"); // gid
    header.write(`${f.data.length.toString(8).padStart(11, "0")}\0`, 124, 12, "ascii");
    header.write("00000000000\0", 136, 12, "ascii"); // mtime: fixed, so packing is reproducible
    header.write("        ", 148, 8, "ascii"); // checksum placeholder (spaces while summing)
    header.write("0", 156, 1, "ascii"); // regular file
    header.write("ustar\0", 257, 6, "ascii");
    header.write("00", 263, 2, "ascii");
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
    blocks.push(header, Buffer.from(f.data));
    const pad = (BLOCK - (f.data.length % BLOCK)) % BLOCK;
    if (pad) blocks.push(Buffer.alloc(pad, 0));
  }
  blocks.push(Buffer.alloc(BLOCK * 2, 0));
  return gzipSync(Buffer.concat(blocks), { level: 9 });
}

/** .tar.gz bytes → its files. Throws (naming the entry) on anything but plain files and folders. */
export function unpackTarGz(bytes: Uint8Array): TarEntry[] {
  const tar = gunzipSync(bytes, { maxOutputLength: MAX_UNPACKED_BYTES });
  const files: TarEntry[] = [];
  for (let offset = 0; offset + BLOCK <= tar.length; ) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
    const recorded = parseInt(text(header, 148, 8).trim() || "-1", 8);
    if (recorded !== sum) throw new Error(`tar: damaged header at byte ${offset}`);
    const prefix = text(header, 345, 155);
    const name = (prefix ? `${prefix}/` : "") + text(header, 0, 100);
    const size = parseInt(text(header, 124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156]!);
    if (!Number.isSafeInteger(size) || size < 0 || offset + BLOCK + size > tar.length) throw new Error(`tar: ${name}: bad size`);
    const data = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "5") continue; // a folder: made as its files need it
    if (type !== "0" && type !== "\0") throw new Error(`tar: ${name}: only plain files are accepted (type ${JSON.stringify(type)})`);
    checkName(name);
    files.push({ name, data: new Uint8Array(data) });
  }
  return files;
}

/** Relative, `/`-separated, no `.`/`..`/empty segments: a name that cannot leave its folder. */
function checkName(name: string): void {
  const parts = name.split("/");
  if (!name || name.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..") || /[\0\\]/.test(name)) {
    throw new Error(`tar: refusing the name ${JSON.stringify(name)}`);
  }
}

function text(block: Uint8Array, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return Buffer.from(end === -1 ? field : field.subarray(0, end)).toString("utf8");
}
