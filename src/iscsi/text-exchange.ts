/**
 * Text request/response exchanges of one connection (RFC 7143 6.2, 11.10, 11.11): the
 * initiator's text may span several PDUs (C bit), and an answer longer than the initiator's
 * MaxRecvDataSegmentLength is continued with a Target Transfer Tag that the initiator echoes
 * in empty requests until the last part (F bit).
 */
import { Buffer } from 'node:buffer';
import { RESERVED_TAG } from './spec.js';
import { encodeText, parseText, TextFormatError, type TextPair } from './text.js';

/** Largest answer kept for continuation, and largest request text accumulated. */
export const MAX_TEXT_LENGTH = 1024 * 1024;

/** One Text Response to send. */
export interface TextReply {
  final: boolean;
  continue: boolean;
  ttt: number;
  data: Buffer | null;
}

/** What a Text Request led to: a reply, or a Reject with this reason code. */
export type TextOutcome = { reply: TextReply } | { reject: 'invalid-ttt' | 'malformed' };

export class TextExchange {
  private continuation: { ttt: number; data: Buffer } | null = null;
  private requestParts: Buffer[] = [];
  private requestLength = 0;

  constructor(
    /** A Target Transfer Tag not used by anything else on the connection. */
    private readonly allocateTtt: () => number,
  ) {}

  /**
   * Handle one Text Request. `answer` turns the complete request's keys into the response keys;
   * `maxSegment` is the initiator's MaxRecvDataSegmentLength.
   */
  request(
    ttt: number,
    cont: boolean,
    data: Buffer,
    maxSegment: number,
    answer: (pairs: TextPair[]) => TextPair[],
  ): TextOutcome {
    if (ttt !== RESERVED_TAG) {
      // 11.10.4: the initiator asks for the next part of a long answer.
      const pending = this.continuation;
      if (!pending || pending.ttt !== ttt) return { reject: 'invalid-ttt' };
      return { reply: this.part(pending.data, maxSegment) };
    }
    // A new request (TTT 0xffffffff) abandons any answer still being continued.
    this.continuation = null;
    this.requestLength += data.length;
    if (this.requestLength > MAX_TEXT_LENGTH) {
      this.reset();
      return { reject: 'malformed' };
    }
    if (cont) {
      // The initiator's text continues in its next PDU: acknowledge with an empty response.
      this.requestParts.push(Buffer.from(data));
      return { reply: { final: false, continue: true, ttt: this.allocateTtt(), data: null } };
    }
    const parts = [...this.requestParts, data];
    this.reset();
    let pairs: TextPair[];
    try {
      pairs = parseText(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    } catch (e) {
      if (e instanceof TextFormatError) return { reject: 'malformed' };
      throw e;
    }
    const encoded = encodeText(answer(pairs)).subarray(0, MAX_TEXT_LENGTH);
    return { reply: this.part(encoded, maxSegment) };
  }

  /** As much of `data` as fits; the rest waits for the initiator's next request (11.11). */
  private part(data: Buffer, maxSegment: number): TextReply {
    if (data.length <= maxSegment) {
      this.continuation = null;
      return { final: true, continue: false, ttt: RESERVED_TAG, data: data.length ? data : null };
    }
    const ttt = this.allocateTtt();
    this.continuation = { ttt, data: data.subarray(maxSegment) };
    return { final: false, continue: true, ttt, data: data.subarray(0, maxSegment) };
  }

  private reset(): void {
    this.requestParts = [];
    this.requestLength = 0;
  }
}
