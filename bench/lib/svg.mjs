// A very small SVG writer: elements as nested arrays of strings, attributes escaped.

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

/** `el('rect', {x: 1}, ...children)`: children are strings (already SVG) or nested el() results. */
export function el(tag, attrs = {}, ...children) {
  const a = Object.entries(attrs)
    .filter(([, v]) => v !== undefined && v !== null && v !== false)
    .map(([k, v]) => ` ${k}="${esc(typeof v === 'number' ? Math.round(v * 100) / 100 : v)}"`)
    .join('');
  const inner = children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
  return inner.length === 0 ? `<${tag}${a}/>` : `<${tag}${a}>${inner.join('')}</${tag}>`;
}

/** A text node's content, escaped. */
export const text = (s) => esc(s);

export function document(width, height, ...children) {
  return `${el(
    'svg',
    {
      xmlns: 'http://www.w3.org/2000/svg',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      'font-family': 'system-ui, sans-serif',
    },
    ...children,
  )}\n`;
}
