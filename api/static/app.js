// Facecraft's page: uploads a photo as a job, follows it (server-sent events read through
// fetch, so the API key can go in a header; polling when the stream is unavailable) and shows
// the portrait from its presigned S3 URL. Plain script, no build step, no third-party code.
'use strict';

(function () {
  // What each preset sets that the form shows (contract/src/job.rs, `Preset::params`); the
  // server fills in the rest (framing, eye line, JPEG cap). A job names its preset and sends
  // only the shown values the user changed, so the server's preset stays the authority.
  const PRESETS = {
    ad: { size: [648, 648], background: '#f0f0f0', oval: true },
    passport: { size: [413, 531], background: '#f0f0f0', oval: false }, // 35 × 45 mm at 300 dpi
    us_visa: { size: [600, 600], background: '#ffffff', oval: false },
    badge: { size: [480, 640], background: '#f0f0f0', oval: false },
  };
  // The quality report's measurements (QualityReport in contract/src/job.rs), in table order.
  const fixed = (digits, unit) => (v) => `${v.toFixed(digits)}${unit || ''}`;
  const QUALITY_ROWS = [
    ['eye_tilt_deg', 'Eye line tilt', fixed(1, '°')],
    ['yaw_deg', 'Head turn (yaw)', fixed(1, '°')],
    ['eye_offset_pct', 'Eyes off centre', (v) => `${v > 0 ? '+' : ''}${v.toFixed(1)} %`],
    ['eye_height_pct', 'Eye line from the bottom', fixed(1, ' %')],
    ['head_height_ratio', 'Head height', (v) => `${(v * 100).toFixed(0)} % of the frame`],
    ['padded_pct', 'Padded with background', fixed(1, ' %')],
    ['background_uniformity', 'Background uniformity', fixed(2)],
    ['sharpness', 'Sharpness', fixed(0)],
    ['face_luminance', 'Face brightness', (v) => `${v.toFixed(0)} / 255`],
    ['face_clipped_pct', 'Face pixels clipped', fixed(1, ' %')],
    ['upscale', 'Enlargement', fixed(2, '×')],
  ];
  const WARNING_TEXT = {
    turned_head: 'Head turned',
    blurry: 'Blurry',
    dark: 'Too dark',
    overexposed: 'Overexposed',
    padded: 'Padded',
    low_resolution: 'Low resolution',
    busy_background: 'Busy background',
  };
  // Pipeline stages in the order the worker reports them (worker/src/job.rs, portrait.rs).
  const STAGES = ['fetch', 'decode', 'detect', 'landmarks', 'align', 'crop', 'segment',
    'enhance', 'compose', 'encode', 'store'];
  const TERMINAL = new Set(['succeeded', 'failed', 'cancelled', 'dead']);
  const POLL_MS = 700;
  const KEY_STORAGE = 'facecraft.apiKey';

  /** An error answer of the API: its `{error, code}` body and HTTP status. */
  class ApiError extends Error {
    constructor(message, code, status, retryAfter) {
      super(message);
      this.name = 'ApiError';
      this.code = code || null;
      this.status = status || null;
      this.retryAfter = retryAfter || null;
    }
  }

  /**
   * Incremental parser of a text/event-stream (WHATWG HTML §9.2.6): feed it decoded text as it
   * arrives; it returns the events completed so far as {event, data, id}.
   */
  class SseParser {
    constructor() {
      this.buffer = '';
      this.reset();
    }

    reset() {
      this.eventType = '';
      this.data = [];
      this.hasData = false;
      this.lastId = this.lastId || '';
    }

    push(text) {
      this.buffer += text;
      const events = [];
      for (;;) {
        const m = /\r\n|\r|\n/.exec(this.buffer);
        if (!m) break;
        // A lone CR at the very end may be the first half of a CRLF split across chunks.
        if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
        const line = this.buffer.slice(0, m.index);
        this.buffer = this.buffer.slice(m.index + m[0].length);
        const ev = this.line(line);
        if (ev) events.push(ev);
      }
      return events;
    }

    /** The stream ended: a trailing CR is a line end; an unterminated event is dropped. */
    end() {
      const events = this.buffer.endsWith('\r') ? this.push('\n') : [];
      this.buffer = '';
      return events;
    }

    line(line) {
      if (line === '') {
        const ev = this.hasData
          ? { event: this.eventType || 'message', data: this.data.join('\n'), id: this.lastId }
          : null;
        this.reset();
        return ev;
      }
      if (line.startsWith(':')) return null; // comment / keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      switch (field) {
        case 'event': this.eventType = value; break;
        case 'data': this.data.push(value); this.hasData = true; break;
        case 'id': if (!value.includes('\0')) this.lastId = value; break;
        default: break; // `retry` and unknown fields do not matter here
      }
      return null;
    }
  }

  // Exposed for the browser test: the stream parser on streams the API may send, what the form
  // would send, and the rendering of quality reports (fed made-up ones, whatever the pipeline).
  window.Facecraft = {
    SseParser, ApiError, formParams, renderQuality, showError, cspViolations: [],
  };

  const $ = (id) => document.getElementById(id);
  let current = null; // {id, abort: AbortController} of the job being followed

  document.addEventListener('securitypolicyviolation', (e) => {
    window.Facecraft.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
  });

  function apiKey() {
    return $('api-key').value.trim();
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const key = apiKey();
    if (key) h.Authorization = `Bearer ${key}`;
    return h;
  }

  async function errorFrom(resp) {
    let body = null;
    try {
      body = await resp.json();
    } catch (_) {
      // not JSON: a proxy's error page, say
    }
    const message = body && typeof body.error === 'string'
      ? body.error
      : `The server answered ${resp.status} ${resp.statusText}`.trim();
    return new ApiError(message, body && body.code, resp.status, resp.headers.get('retry-after'));
  }

  function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        reject(new DOMException('aborted', 'AbortError'));
      }, { once: true });
    });
  }

  // ---- form ---------------------------------------------------------------------------------

  /** The job's parameters as the form shows them. */
  function formParams() {
    const preset = PRESETS[$('preset').value];
    const shown = {
      background: $('background').value.toLowerCase(),
      oval_mask: $('oval').checked,
    };
    let params;
    if (preset) {
      params = { preset: $('preset').value };
      if (shown.background !== preset.background) params.background = shown.background;
      if (shown.oval_mask !== preset.oval) params.oval_mask = shown.oval_mask;
    } else {
      params = Object.assign({
        width: Number($('width').value),
        height: Number($('height').value),
      }, shown);
    }
    params.enhance = $('enhance').checked;
    if ($('strict').checked) params.quality = 'strict';
    return params;
  }

  /** Shows a preset's values in the form (and its size in the custom fields, to start from). */
  function applyPreset(name) {
    const preset = PRESETS[name];
    if (!preset) return;
    $('background').value = preset.background;
    $('oval').checked = preset.oval;
    [$('width').value, $('height').value] = preset.size.map(String);
  }

  let photo = null;
  let previewUrl = null;

  function choose(file) {
    if (!file) return;
    photo = file;
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    const img = $('preview');
    img.src = previewUrl;
    img.alt = `Chosen photo: ${file.name}`;
    img.hidden = false;
    $('file-name').textContent = `${file.name} (${formatBytes(file.size)})`;
    clearError();
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function setupForm() {
    const key = $('api-key');
    try {
      key.value = localStorage.getItem(KEY_STORAGE) || '';
    } catch (_) {
      // storage disabled: the key just is not remembered
    }
    if (key.value) $('key-box').open = true;
    key.addEventListener('input', () => {
      try {
        if (key.value.trim()) localStorage.setItem(KEY_STORAGE, key.value.trim());
        else localStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        // as above
      }
    });

    $('photo').addEventListener('change', (e) => choose(e.target.files[0]));
    const drop = $('drop');
    drop.addEventListener('dragover', (e) => {
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      drop.classList.add('over');
    });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      const file = e.dataTransfer.files[0];
      if (file) choose(file);
    });

    const preset = $('preset');
    const syncCustom = () => {
      const custom = !PRESETS[preset.value];
      $('custom-size').hidden = !custom;
      $('width').required = custom;
      $('height').required = custom;
    };
    preset.addEventListener('change', () => {
      applyPreset(preset.value);
      syncCustom();
    });
    applyPreset(preset.value);
    syncCustom();

    $('job-form').addEventListener('submit', (e) => {
      e.preventDefault();
      submit();
    });
    $('cancel').addEventListener('click', cancel);
  }

  // ---- job ----------------------------------------------------------------------------------

  async function submit() {
    clearError();
    if (!photo) {
      showError(new ApiError('Choose a photo first.', null, null));
      $('photo').focus();
      return;
    }
    if (!$('job-form').reportValidity()) return;
    const params = formParams();
    const body = new FormData();
    body.append('image', photo, photo.name);
    body.append('params', JSON.stringify(params));

    if (current) current.abort.abort();
    const abort = new AbortController();
    current = { id: null, abort };
    $('result-panel').hidden = true;
    renderQuality(null);
    renderProgress({ state: 'uploading' });
    setBusy(true);
    try {
      const resp = await fetch('/v1/jobs', {
        method: 'POST', headers: authHeaders(), body, signal: abort.signal,
      });
      if (!resp.ok) throw await errorFrom(resp);
      let status = await resp.json();
      current.id = status.id;
      renderProgress(status);
      status = await follow(status, abort.signal);
      if (status.state === 'succeeded') {
        await showResult(status, abort.signal);
      } else {
        const err = status.error || {};
        showError(new ApiError(
          err.message || `The job ended ${status.state}.`,
          err.code || status.state,
          null,
        ), err.warnings);
      }
    } catch (e) {
      if (e.name !== 'AbortError') showError(e);
    } finally {
      if (current && current.abort === abort) {
        setBusy(false);
        current = null;
      }
    }
  }

  async function cancel() {
    if (!current) return;
    const { id, abort } = current;
    if (!id) {
      abort.abort(); // still uploading
      $('status').textContent = 'Upload cancelled.';
      setBusy(false);
      current = null;
      return;
    }
    try {
      const resp = await fetch(`/v1/jobs/${encodeURIComponent(id)}`, {
        method: 'DELETE', headers: authHeaders(),
      });
      if (!resp.ok) throw await errorFrom(resp);
      // The followed stream or poll sees the job end as `cancelled`.
    } catch (e) {
      showError(e);
    }
  }

  /** Follows a job until it ends: server-sent events first, polling when they are not there. */
  async function follow(status, signal) {
    if (TERMINAL.has(status.state)) return status;
    let last = status;
    try {
      const ended = await followEvents(status.id, signal, (s) => { last = s; });
      if (ended) return ended;
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      // The stream broke mid-way: polling picks up from wherever the job is now.
      console.warn('event stream failed, polling instead:', e);
    }
    return poll(last.id, signal);
  }

  /**
   * Reads GET /v1/jobs/{id}/events: `event: status` with the JobStatus as data, the first at
   * once, the stream closing after a terminal one. EventSource cannot send an Authorization
   * header, so this parses the stream itself. Returns the terminal status, or null when the
   * endpoint is not there or the stream ended early (the caller then polls).
   */
  async function followEvents(id, signal, seen) {
    const resp = await fetch(`/v1/jobs/${encodeURIComponent(id)}/events`, {
      headers: authHeaders({ Accept: 'text/event-stream' }), signal, cache: 'no-store',
    });
    const type = resp.headers.get('content-type') || '';
    if (!resp.ok || !type.startsWith('text/event-stream') || !resp.body) {
      // 404/405: an API without the endpoint. Anything else, polling reports properly.
      if (resp.body) resp.body.cancel().catch(() => {});
      return null;
    }
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        const events = done ? parser.end() : parser.push(value);
        for (const ev of events) {
          if (ev.event !== 'status') continue;
          const status = JSON.parse(ev.data);
          seen(status);
          renderProgress(status);
          if (TERMINAL.has(status.state)) return status;
        }
        if (done) return null;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  async function poll(id, signal) {
    let failures = 0;
    for (;;) {
      let resp;
      try {
        resp = await fetch(`/v1/jobs/${encodeURIComponent(id)}`, {
          headers: authHeaders(), signal, cache: 'no-store',
        });
      } catch (e) {
        if (e.name === 'AbortError' || ++failures > 10) throw e;
        await sleep(POLL_MS * failures, signal); // network blip: back off and try again
        continue;
      }
      if (resp.ok) {
        failures = 0;
        const status = await resp.json();
        renderProgress(status);
        if (TERMINAL.has(status.state)) return status;
        await sleep(POLL_MS, signal);
        continue;
      }
      const err = await errorFrom(resp);
      // Overload and outages are worth waiting out; anything else is the answer.
      if (![429, 502, 503, 504].includes(resp.status) || ++failures > 10) throw err;
      const wait = Math.min(Number(err.retryAfter) * 1000 || POLL_MS * failures, 10000);
      $('status').textContent = `${err.message} Retrying…`;
      await sleep(wait, signal);
    }
  }

  // ---- rendering ----------------------------------------------------------------------------

  function setBusy(busy) {
    $('submit').disabled = busy;
    $('submit').textContent = busy ? 'Working…' : 'Make portrait';
    $('cancel').hidden = !busy;
    $('job-form').setAttribute('aria-busy', String(busy));
  }

  const STATE_TEXT = {
    uploading: 'Uploading the photo…',
    queued: 'Queued, waiting for a worker…',
    running: 'Working',
    succeeded: 'Done.',
    failed: 'Failed.',
    cancelled: 'Cancelled.',
    dead: 'Gave up after repeated worker failures.',
  };

  function renderProgress(status) {
    $('progress-panel').hidden = false;
    const stage = status.progress ? status.progress.stage : null;
    const percent = status.state === 'succeeded' ? 100 : (status.progress ? status.progress.percent : 0);
    let text = STATE_TEXT[status.state] || status.state;
    if (status.state === 'running' && stage) text = `Working: ${stage} (${percent}%)`;
    if (status.attempts > 1 && !TERMINAL.has(status.state)) text += ` — attempt ${status.attempts}`;
    $('status').textContent = text;
    $('bar').value = percent;
    $('bar').textContent = `${percent}%`;

    const list = $('stages');
    if (!list.children.length) {
      for (const name of STAGES) {
        const li = document.createElement('li');
        li.dataset.stage = name;
        li.textContent = name;
        list.appendChild(li);
      }
    }
    const at = stage ? STAGES.indexOf(stage) : -1;
    const timings = (status.result && status.result.timings_ms) || {};
    for (const li of list.children) {
      const i = STAGES.indexOf(li.dataset.stage);
      let state = 'pending';
      if (status.state === 'succeeded') state = li.dataset.stage in timings ? 'done' : 'skipped';
      else if (status.state === 'running' && at >= 0) state = i < at ? 'done' : (i === at ? 'active' : 'pending');
      li.dataset.state = state;
      const ms = timings[li.dataset.stage];
      li.textContent = ms === undefined ? li.dataset.stage : `${li.dataset.stage} ${ms} ms`;
      if (state === 'active') li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    }
  }

  async function showResult(status, signal) {
    let outputs = (status.result && status.result.outputs) || [];
    if (outputs.some((o) => !o.url)) {
      // A status without presigned URLs (an event, say): the record from GET carries them.
      const resp = await fetch(`/v1/jobs/${encodeURIComponent(status.id)}`, {
        headers: authHeaders(), signal, cache: 'no-store',
      });
      if (!resp.ok) throw await errorFrom(resp);
      outputs = ((await resp.json()).result || {}).outputs || [];
    }
    const shown = outputs.find((o) => o.format === 'png') || outputs[0];
    if (!shown || !shown.url) throw new ApiError('The job succeeded but has no result to show.', 'not_found', null);

    const img = $('result-img');
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => reject(new ApiError(
        'The result image could not be loaded from storage (its link may have expired, or the '
        + 'storage server is not reachable from this browser).', 'result_unreachable', null,
      ));
      img.src = shown.url;
    });
    img.alt = `Portrait, ${shown.width} × ${shown.height} pixels`;
    $('result-caption').textContent = `${shown.width} × ${shown.height} px`;

    const list = $('downloads');
    list.replaceChildren();
    for (const o of outputs) {
      if (!o.url) continue;
      const a = document.createElement('a');
      a.href = o.url;
      // `download` only names the file on the same origin; elsewhere it opens in a new tab.
      a.download = `portrait-${status.id}.${o.format}`;
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = `Download ${o.format === 'jpg' ? 'JPEG' : o.format.toUpperCase()} (${formatBytes(o.bytes)})`;
      const li = document.createElement('li');
      li.appendChild(a);
      list.appendChild(li);
    }
    renderQuality(status.result && status.result.quality);
    $('result-panel').hidden = false;
    $('result-title').focus();
  }

  /** Fills a list with one badge per quality warning (or one "no warnings" badge). */
  function renderBadges(list, warnings) {
    list.replaceChildren();
    const names = Array.isArray(warnings) ? warnings : [];
    for (const name of names) {
      const li = document.createElement('li');
      li.className = 'badge warn';
      li.dataset.warning = name;
      li.title = name;
      li.textContent = WARNING_TEXT[name] || name.replace(/_/g, ' ');
      list.appendChild(li);
    }
    if (!names.length) {
      const li = document.createElement('li');
      li.className = 'badge ok';
      li.textContent = 'No warnings';
      list.appendChild(li);
    }
  }

  /** The quality report under the portrait: its warnings as badges, its measurements as a table. */
  function renderQuality(report) {
    const section = $('quality');
    const body = $('quality-table').tBodies[0];
    body.replaceChildren();
    if (!report || typeof report !== 'object') {
      section.hidden = true;
      return;
    }
    renderBadges($('quality-warnings'), report.warnings);
    for (const [field, label, format] of QUALITY_ROWS) {
      const v = report[field];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      const tr = document.createElement('tr');
      tr.dataset.field = field;
      const th = document.createElement('th');
      th.scope = 'row';
      th.textContent = label;
      const td = document.createElement('td');
      td.textContent = format(v);
      tr.append(th, td);
      body.appendChild(tr);
    }
    section.hidden = false;
  }

  function showError(e, warnings) {
    let message = e.message || String(e);
    if (e.status === 401) message += ' — enter an API key under “API key”.';
    if (e.status === 429 && e.retryAfter) message += ` — retry in ${e.retryAfter} s.`;
    if (e instanceof TypeError) message = `Could not reach the server: ${message}`;
    $('error-message').textContent = message;
    const parts = [e.code, e.status ? `HTTP ${e.status}` : null].filter(Boolean);
    $('error-code').textContent = parts.length ? `(${parts.join(', ')})` : '';
    const list = $('error-warnings');
    if (Array.isArray(warnings) && warnings.length) {
      renderBadges(list, warnings);
      list.hidden = false;
    } else {
      list.replaceChildren();
      list.hidden = true;
    }
    $('error').hidden = false;
    if (e.status === 401) $('key-box').open = true;
  }

  function clearError() {
    $('error').hidden = true;
    $('error-message').textContent = '';
    $('error-code').textContent = '';
    $('error-warnings').replaceChildren();
    $('error-warnings').hidden = true;
  }

  setupForm();
}());
