import type { RtpReceiveStats } from '../rtc/rtp-ingest.js';

/**
 * What a `session ended` log line says of a session: how long it ran and its
 * RTP statistics, rounded as they are logged. One place for the engines' line
 * and the `--processes` front's (a killed engine's sessions), so both read alike.
 */
export function sessionEndFigures(createdAt: number, endedAt: number, rtp: Pick<RtpReceiveStats, 'packetsReceived' | 'packetsLost' | 'lossRatio' | 'jitter'>) {
  return {
    seconds: Math.round((endedAt - createdAt) / 100) / 10,
    packets: rtp.packetsReceived,
    lost: rtp.packetsLost,
    lossRatio: Math.round(rtp.lossRatio * 10000) / 10000,
    jitterMs: Math.round(rtp.jitter * 1e5) / 100,
  };
}
