/**
 * Hole punching (fallocate(2) with FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) without a fork per
 * command. Node's fs has no fallocate, so this uses the `fs-native-extensions` binding (Holepunch,
 * Apache-2.0, prebuilt for linux-x64/arm64 inside the npm package: no build or download step),
 * whose `trim(fd, offset, length)` runs the call on the libuv thread pool. It is loaded lazily and
 * optional: when it cannot be loaded (an unusual platform) `punchHole` is null and stores fall back
 * to writing zeroes, which keeps reads right but frees nothing.
 *
 * Why not SEEK_DATA/SEEK_HOLE too: no maintained binding on npm offers lseek with those whence
 * values without a compile step, so allocation is tracked in memory instead (allocation-map.ts).
 */
import { createRequire } from 'node:module';

/** Deallocate [offset, offset+length) of the open file `fd`; reads of the range then return zeroes. */
export type PunchHole = (fd: number, offset: number, length: number) => Promise<void>;

interface FsNativeExtensions {
  trim(fd: number, offset: number, length: number): Promise<void>;
}

function load(): PunchHole | null {
  if (process.platform !== 'linux') return null; // trim zero-fills elsewhere; we only rely on Linux
  try {
    const mod = createRequire(import.meta.url)('fs-native-extensions') as Partial<FsNativeExtensions>;
    const trim = mod.trim;
    if (typeof trim !== 'function') return null;
    return (fd, offset, length) => trim.call(mod, fd, offset, length);
  } catch {
    return null;
  }
}

/** The hole puncher, or null when the native binding is unavailable. */
export const punchHole: PunchHole | null = load();
