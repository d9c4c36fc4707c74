/**
 * werift's RTP header parser, without its string-based bit reading.
 *
 * werift 0.25 reads the header's bit fields with `getBit()`, which formats the
 * byte as a binary string, splits, pads, slices and joins it: six calls per
 * header, and every received packet's header is parsed twice (before SRTP
 * authentication and again after decryption; with AES-GCM the second parse
 * now reuses the first, see `alreadyParsed`). On a receive-only audio server
 * that was ~38 % of werift's main-thread allocation (773 → 480 KB per
 * stream-second with this parser, measured with the capacity bench's bare
 * werift receiver) and up to ~17 % of its main-thread CPU. werift has no
 * option to change it, and a patch to node_modules would not reach users who
 * install earshot as a package; so earshot replaces the static
 * `RtpHeader.deSerialize` (every werift caller goes through it) with the same
 * parse done with shifts and masks, once, when this module is loaded.
 *
 * Same fields, same values, same class, same exceptions on truncated input:
 * test/rtc/werift-rtp-header.test.ts checks it against werift's own function
 * on generated headers (CSRCs, one-byte, two-byte and other extension
 * profiles, padding). One difference, on malformed input only: a header whose
 * extension block runs past the end of the packet throws here (werift reads
 * on past the end, in time quadratic in the length the header claims). Only
 * werift's string-based function is replaced: a werift whose parser no longer
 * calls `getBit` is left as it is. The upstream fix is
 * one line: `getBit = (bits, start, length = 1) => (bits >> (8 - start - length)) & ((1 << length) - 1)`.
 */
import { RtpHeader } from 'werift';

type Extension = RtpHeader['extensions'][number];
type DeSerialize = (raw: Buffer) => RtpHeader;

const ONE_BYTE_PROFILE = 0xbede;
const TWO_BYTE_PROFILE = 0x1000;

/**
 * The header of the last packet decrypted (see `alreadyParsed`), for the parse
 * of that same buffer that follows, and only for that one.
 */
let knownRaw: Buffer | undefined;
let knownHeader: RtpHeader | undefined;

/**
 * Hands the parser a header just parsed and checked for exactly `raw`.
 *
 * werift parses each received packet's header twice: once from the SRTP
 * packet to authenticate and decrypt it, and again from the decrypted buffer
 * (`RtpPacket.deSerialize`), same bytes both times (SRTP leaves the header in
 * the clear). The AES-GCM decryption (werift-srtp-gcm.ts) has the first parse
 * with the padding size read from the decrypted packet, which is all the
 * second would compute; it passes it here with the buffer it returns, and the
 * next parse of that very buffer returns it instead of parsing again. The
 * first parse's object is werift's local, dropped once decryption returns.
 */
export function alreadyParsed(raw: Buffer, header: RtpHeader): void {
  knownRaw = raw;
  knownHeader = header;
}

/** The parse werift does, field by field, without strings. */
function deSerialize(raw: Buffer): RtpHeader {
  if (raw === knownRaw) {
    const known = knownHeader!;
    knownRaw = knownHeader = undefined;
    return known;
  }
  return parseUpTo(raw, raw.length);
}

/**
 * The header of the packet in `raw[0, end)`, as `RtpHeader.deSerialize` of
 * `raw.subarray(0, end)` gives it, without making that view (an SRTP packet's
 * header is parsed from the bytes before its auth tag). Only while
 * `replacesWerift`; werift's own parser otherwise. A header whose fixed
 * fields run past `end` throws a RangeError as werift's does; one whose
 * extension elements run past it may read the bytes after `end` where werift
 * reads `undefined`, and then claims a payload offset past `end`, which is
 * how a caller that checks the offset (the SRTP context) refuses it either way.
 */
export function rtpHeaderUpTo(raw: Buffer, end: number): RtpHeader {
  return replacesWerift && end >= 12 && end <= raw.length ? parseUpTo(raw, end) : RtpHeader.deSerialize(raw.subarray(0, end));
}

function parseUpTo(raw: Buffer, end: number): RtpHeader {
  const h = new RtpHeader();
  const b0 = raw[0];
  h.version = b0 >> 6;
  h.padding = (b0 & 0x20) !== 0;
  h.extension = (b0 & 0x10) !== 0;
  h.csrcLength = b0 & 0x0f;
  const b1 = raw[1];
  h.marker = (b1 & 0x80) !== 0;
  h.payloadType = b1 & 0x7f;
  h.sequenceNumber = raw.readUInt16BE(2);
  h.timestamp = raw.readUInt32BE(4);
  h.ssrc = raw.readUInt32BE(8);
  // Into the arrays werift's constructor made for this header (new ones would be garbage at once).
  const csrc = h.csrc;
  if (12 + 4 * h.csrcLength + (h.extension ? 4 : 0) > end) throw new RangeError(`RTP header of ${12 + 4 * h.csrcLength} bytes or more runs past the end of the ${end}-byte packet`);
  for (let i = 0; i < h.csrcLength; i++) csrc.push(raw.readUInt32BE(12 + 4 * i));
  let offset = 12 + 4 * h.csrcLength;
  if (h.extension) {
    h.extensionProfile = raw.readUInt16BE(offset) as RtpHeader['extensionProfile'];
    offset += 2;
    const length = raw.readUInt16BE(offset) * 4;
    h.extensionLength = length;
    offset += 2;
    const blockEnd = offset + length;
    // A block that runs past the packet is malformed. werift walks it anyway, past the end (reading
    // undefined as one-byte elements), and copies its extension array for every element it adds: a
    // 100-byte packet claiming a 160 KiB block held the main thread for over a minute with werift's
    // parser, and ~70 ms with a linear walk. Every caller drops a packet whose header throws.
    if (blockEnd > end) throw new RangeError(`RTP header extension block of ${length} bytes runs past the end of the ${end}-byte packet`);
    const extensions: Extension[] = h.extensions;
    if (h.extensionProfile === ONE_BYTE_PROFILE) {
      // RFC 8285 §4.2: ID in the high nibble, length − 1 in the low; 0 is padding, 15 ends the block.
      while (offset < blockEnd) {
        const byte = raw[offset];
        if (byte === 0) {
          offset++;
          continue;
        }
        const id = byte >> 4;
        const len = (byte & 0x0f) + 1;
        offset++;
        if (id === 15) break;
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        offset += len;
      }
    } else if (h.extensionProfile === TWO_BYTE_PROFILE) {
      // RFC 8285 §4.3: an ID byte and a length byte.
      while (offset < blockEnd) {
        if (raw[offset] === 0) {
          offset++;
          continue;
        }
        const id = raw[offset++];
        const len = raw[offset++];
        extensions.push({ id, payload: raw.subarray(offset, offset + len) });
        offset += len;
      }
    } else {
      // Any other profile: the whole block as one extension with id 0, as werift does.
      const payload = raw.subarray(offset, offset + length);
      extensions.push({ id: 0, payload });
      offset += payload.length;
    }
  }
  h.payloadOffset = offset;
  if (h.padding) h.paddingSize = raw[end - 1];
  return h;
}

/** werift's own parser, as loaded (the test compares against it). */
export const weriftDeSerialize: DeSerialize = RtpHeader.deSerialize.bind(RtpHeader);

/** Whether werift's parser is the string-based one this module replaces. */
export const replacesWerift = /\bgetBit\(/.test(String(RtpHeader.deSerialize));

/** The parser in use from now on. */
export const rtpHeaderDeSerialize: DeSerialize = replacesWerift ? deSerialize : weriftDeSerialize;

if (replacesWerift) (RtpHeader as unknown as { deSerialize: DeSerialize }).deSerialize = deSerialize;
