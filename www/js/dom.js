// Small DOM helpers the pages share.

// A table cell holding text, with an optional class ("num" right-aligns figures).
export function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text;
  return td;
}
