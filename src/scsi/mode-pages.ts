/**
 * Mode pages of a logical unit (SPC-4 7.5): current, changeable-mask and default values per
 * page/subpage, kept in page format (header included) so MODE SENSE copies them as they are.
 */
import { Buffer } from 'node:buffer';

/** One mode page: `current`, `changeable` and `defaults` are whole pages, header included. */
export interface ModePage {
  readonly page: number;
  readonly subpage: number;
  current: Buffer;
  changeable: Buffer;
  defaults: Buffer;
}

/** Key of a page in the map: page code << 8 | subpage. */
function key(page: number, subpage: number): number {
  return (page << 8) | subpage;
}

/** Header length: 2 for page_0 format, 4 for sub_page format (SPC-4 7.5.7). */
export function modePageHeaderLength(subpage: number): number {
  return subpage === 0 ? 2 : 4;
}

/** Wrap `body` (the bytes after the header) into a formatted page. */
export function formatModePage(page: number, subpage: number, body: Buffer | readonly number[]): Buffer {
  const hdr = modePageHeaderLength(subpage);
  const buf = Buffer.alloc(hdr + body.length);
  if (subpage === 0) {
    buf[0] = page & 0x3f;
    buf[1] = body.length;
  } else {
    buf[0] = 0x40 | (page & 0x3f); // SPF
    buf[1] = subpage;
    buf.writeUInt16BE(body.length, 2);
  }
  for (let i = 0; i < body.length; i++) buf[hdr + i] = body[i]!;
  return buf;
}

/** The set of mode pages of one LU, listed in ascending page/subpage order. */
export class ModePages {
  private readonly pages = new Map<number, ModePage>();
  private sorted: ModePage[] = [];

  /** Look up a page. */
  get(page: number, subpage: number): ModePage | undefined {
    return this.pages.get(key(page, subpage));
  }

  /** All pages in ascending page code, then subpage. */
  list(): readonly ModePage[] {
    return this.sorted;
  }

  /**
   * Create or replace a page from its body bytes. `changeableBody` defaults to the existing
   * page's mask when the length is unchanged, else all zero (nothing changeable).
   */
  set(
    page: number,
    subpage: number,
    body: Buffer | readonly number[],
    changeableBody?: readonly number[],
  ): ModePage {
    const current = formatModePage(page, subpage, body);
    const old = this.get(page, subpage);
    let changeable: Buffer;
    if (changeableBody) changeable = formatModePage(page, subpage, changeableBody);
    else if (old && old.changeable.length === current.length) changeable = old.changeable;
    else changeable = formatModePage(page, subpage, Buffer.alloc(body.length));
    const entry: ModePage = { page, subpage, current, changeable, defaults: Buffer.from(current) };
    this.pages.set(key(page, subpage), entry);
    this.sorted = [...this.pages.values()].sort((a, b) => key(a.page, a.subpage) - key(b.page, b.subpage));
    return entry;
  }
}
