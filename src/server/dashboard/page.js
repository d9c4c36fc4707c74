// The dashboard's page helpers: finding elements, showing values that may be
// missing, and the event log. Every value from the server is treated as
// possibly missing and is only ever set as text.

const LOG_LINES = 60;

export const $ = (selector, root = document) => root.querySelector(selector);
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);

/**
 * Makes a button unavailable (or available again) without `disabled`: a disabled button loses the
 * keyboard focus, so a keyboard user who pressed Talk could not reach Stop once it was live. It is
 * announced as unavailable (`aria-disabled`), looks it (CSS), and `onPress` ignores it meanwhile.
 */
export function setUnavailable(button, unavailable) {
  if (unavailable) button.setAttribute('aria-disabled', 'true');
  else button.removeAttribute('aria-disabled');
}

/** A click handler that does nothing while its button is unavailable (`setUnavailable`). */
export function onPress(button, handler) {
  button.addEventListener('click', (e) => {
    if (button.getAttribute('aria-disabled') === 'true') return;
    handler(e);
  });
}

export const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
export const fmt = {
  int: (v) => (num(v) === null ? '–' : Math.round(v).toLocaleString('en')),
  percent: (v, digits = 0) => (num(v) === null ? '–' : `${(v * 100).toFixed(digits)} %`),
  ms: (v) => (num(v) === null ? '–' : v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(1)} ms`),
  db: (v) => (num(v) === null ? '–' : v <= -120 ? 'silence' : `${v.toFixed(1)} dBFS`),
  bitrate: (v) => (num(v) === null ? '–' : v >= 1e6 ? `${(v / 1e6).toFixed(2)} Mbit/s` : `${(v / 1000).toFixed(1)} kbit/s`),
  seconds: (v) => {
    if (num(v) === null) return '–';
    const s = Math.round(v);
    return s >= 60 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}` : `${v.toFixed(1)} s`;
  },
  bytes: (v) => (num(v) === null ? '–' : v >= 1048576 ? `${(v / 1048576).toFixed(1)} MiB` : `${Math.max(1, Math.round(v / 1024))} KiB`),
  time: (v) => {
    const d = new Date(v ?? Date.now());
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString('en-GB', { hour12: false });
  },
};

const logEl = byTestId('log');

/**
 * Adds a line to the event log. The same line again right after it (an
 * outage's "events: Failed to fetch" every 2 s) updates that line's time and
 * count instead, so that it does not push the sessions' history out.
 */
export function log(text, kind = '', at = undefined) {
  const last = logEl.firstElementChild;
  if (last && last.dataset.text === text && last.className === kind) {
    const count = Number(last.dataset.count ?? 1) + 1;
    last.dataset.count = String(count);
    last.querySelector('time').textContent = fmt.time(at);
    last.lastChild.textContent = `${text} (×${count})`;
    return;
  }
  const li = document.createElement('li');
  li.dataset.text = text;
  if (kind) li.className = kind;
  const time = document.createElement('time');
  time.textContent = fmt.time(at);
  li.append(time, document.createTextNode(text));
  logEl.prepend(li);
  while (logEl.children.length > LOG_LINES) logEl.lastElementChild.remove();
}
