// Small helpers shared by the two pages. No dependencies.

/** The element with this id. */
export const byId = (id) => document.getElementById(id);

/** A new element with attributes and children (text or nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** A time as the reader's locale shows it ('–' for none). */
export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** What each end of a session tells the person. */
export const ENDED = {
  reused: 'For your safety, every session of your account was ended: an old copy of your sign-in was used again, which can mean someone stole it. Please log in again, and consider changing your password.',
  revoked: 'Your session was ended (signed out on another device, or by an administrator). Please log in again.',
  expired: 'Your session expired. Please log in again.',
  logout: 'You are logged out.',
  signed_out: 'Please log in.',
};

/** Shows a notice (kind: 'info', 'warn' or 'error'), or hides it for an empty text. */
export function notify(text, kind = 'info', reason = '') {
  const n = byId('notice');
  n.textContent = text || '';
  n.hidden = !text;
  n.dataset.kind = kind;
  n.dataset.reason = reason;
}

/** Runs a form's action with its button disabled and its outcome in its status line. */
export function onSubmit(form, action) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const status = form.querySelector('.form-status');
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    if (status) status.textContent = '';
    try {
      const message = await action(new FormData(form));
      if (status && message) status.textContent = message;
    } catch (e) {
      if (status) status.textContent = describe(e);
    } finally {
      button.disabled = false;
    }
  });
}

/** An ApiError as a sentence. */
export function describe(e) {
  if (!e || !e.code) return 'Something went wrong.';
  switch (e.code) {
    case 'invalid_credentials': return 'Wrong username or password.';
    case 'rate_limited': return 'Too many attempts. Please wait a moment and try again.';
    case 'username_taken': return 'That username is taken.';
    case 'network_error': return 'The server cannot be reached.';
    case 'service_unavailable': return 'The server is busy. Please try again shortly.';
    case 'invalid_input': {
      const fields = (e.problem && e.problem.errors) || [];
      return fields.length ? fields.map((f) => `${f.field}: ${f.message}`).join('; ') : 'Please check your input.';
    }
    default: return e.message || 'Something went wrong.';
  }
}
