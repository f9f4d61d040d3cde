/** A few DOM helpers: elements are built with text nodes only, never from HTML strings. */

type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (name === 'class') el.className = String(value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  el.append(...children.filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false).map((c) => (typeof c === 'number' ? String(c) : c)));
  return el;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console: #${id} is missing from the page`);
  return el as T;
}

/** A table body's rows replaced; `empty` shown in one cell when there are none. */
export function fillRows(tbody: HTMLTableSectionElement, rows: HTMLTableRowElement[], columns: number, empty: string): void {
  if (rows.length === 0) rows = [h('tr', {}, h('td', { colspan: String(columns), class: 'empty' }, empty))];
  tbody.replaceChildren(...rows);
}
