// A small terminal renderer for PTY output: ANSI SGR colours and styles become styled spans.
//
// It understands what command-line tools actually print: SGR (colours 16/256/truecolor, bold, dim, italic,
// underline, inverse), carriage return (progress bars redraw their line), backspace, and it drops the other
// control sequences (cursor moves, erase, OSC titles) instead of showing them as garbage. Escape sequences split
// across chunks are carried over to the next write. Text only ever reaches the DOM through textContent.
"use strict";

(function (global) {
  const ESC = "\u001b";

  function defaultStyle() {
    return { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
  }

  function sameStyle(a, b) {
    return a.fg === b.fg && a.bg === b.bg && a.bold === b.bold && a.dim === b.dim && a.italic === b.italic &&
      a.underline === b.underline && a.inverse === b.inverse;
  }

  // 256-colour palette index -> CSS colour (0-15 use the theme's classes instead).
  function xterm256(n) {
    if (n < 16) return null;
    if (n >= 232) {
      const v = 8 + (n - 232) * 10;
      return `rgb(${v},${v},${v})`;
    }
    const i = n - 16;
    const steps = [0, 95, 135, 175, 215, 255];
    return `rgb(${steps[Math.floor(i / 36)]},${steps[Math.floor(i / 6) % 6]},${steps[i % 6]})`;
  }

  // Apply one SGR parameter list to a style (returns a new style object).
  function applySgr(style, params) {
    const s = Object.assign({}, style);
    const p = params.length ? params : [0];
    for (let i = 0; i < p.length; i++) {
      const code = p[i];
      if (code === 0) Object.assign(s, defaultStyle());
      else if (code === 1) s.bold = true;
      else if (code === 2) s.dim = true;
      else if (code === 3) s.italic = true;
      else if (code === 4) s.underline = true;
      else if (code === 7) s.inverse = true;
      else if (code === 22) { s.bold = false; s.dim = false; }
      else if (code === 23) s.italic = false;
      else if (code === 24) s.underline = false;
      else if (code === 27) s.inverse = false;
      else if (code >= 30 && code <= 37) s.fg = code - 30;
      else if (code >= 90 && code <= 97) s.fg = code - 90 + 8;
      else if (code === 39) s.fg = null;
      else if (code >= 40 && code <= 47) s.bg = code - 40;
      else if (code >= 100 && code <= 107) s.bg = code - 100 + 8;
      else if (code === 49) s.bg = null;
      else if (code === 38 || code === 48) {
        const key = code === 38 ? "fg" : "bg";
        if (p[i + 1] === 5 && p[i + 2] !== undefined) {
          const n = p[i + 2];
          s[key] = n < 16 ? n : xterm256(n);
          i += 2;
        } else if (p[i + 1] === 2 && p[i + 4] !== undefined) {
          s[key] = `rgb(${p[i + 2] & 255},${p[i + 3] & 255},${p[i + 4] & 255})`;
          i += 4;
        }
      }
    }
    return s;
  }

  // Parse text into a list of operations: {text, style} | {cr: true} | {nl: true} | {bs: true}.
  // Returns [ops, rest] where rest is an incomplete escape sequence to prepend to the next chunk.
  function parse(text, startStyle) {
    const ops = [];
    let style = startStyle;
    let buf = "";
    const flush = () => {
      if (buf) ops.push({ text: buf, style });
      buf = "";
    };
    let i = 0;
    while (i < text.length) {
      const ch = text[i];
      if (ch === ESC) {
        if (i + 1 >= text.length) { flush(); return [ops, text.slice(i), style]; }
        const next = text[i + 1];
        if (next === "[") {
          // CSI: parameters and intermediates, then a final byte in @..~
          let j = i + 2;
          while (j < text.length && !(text.charCodeAt(j) >= 0x40 && text.charCodeAt(j) <= 0x7e)) j++;
          if (j >= text.length) { flush(); return [ops, text.slice(i), style]; }
          const final = text[j];
          const body = text.slice(i + 2, j);
          if (final === "m" && /^[0-9;:]*$/.test(body)) {
            flush();
            const params = body === "" ? [] : body.split(/[;:]/).map((x) => (x === "" ? 0 : parseInt(x, 10)));
            style = applySgr(style, params);
          } else if (final === "K" || final === "J") {
            flush();
            ops.push({ erase: true });
          }
          i = j + 1;
          continue;
        }
        if (next === "]") {
          // OSC: ends with BEL or ESC \
          let j = i + 2;
          while (j < text.length && text[j] !== "\u0007" && !(text[j] === ESC && text[j + 1] === "\\")) j++;
          if (j >= text.length) { flush(); return [ops, text.slice(i), style]; }
          i = text[j] === "\u0007" ? j + 1 : j + 2;
          continue;
        }
        i += 2; // other two-byte escapes (charset selection, keypad modes)
        continue;
      }
      if (ch === "\r") {
        if (text[i + 1] === "\n") { i++; continue; } // CRLF is a newline; the \n handles it
        if (i + 1 >= text.length) { flush(); return [ops, "\r", style]; } // wait: maybe a split CRLF
        flush();
        ops.push({ cr: true });
      } else if (ch === "\n") {
        flush();
        ops.push({ nl: true });
      } else if (ch === "\b") {
        flush();
        ops.push({ bs: true });
      } else if (ch === "\u0007" || (ch < " " && ch !== "\t")) {
        // bell and other C0 controls: not printable
      } else {
        buf += ch;
      }
      i++;
    }
    flush();
    return [ops, "", style];
  }

  function classFor(style) {
    const cls = [];
    let fg = style.fg, bg = style.bg;
    if (style.inverse) { [fg, bg] = [bg === null ? "inv-fg" : bg, fg === null ? "inv-bg" : fg]; }
    if (typeof fg === "number") cls.push(`ansi-fg-${fg}`);
    else if (fg === "inv-fg") cls.push("ansi-fg-inverse");
    if (typeof bg === "number") cls.push(`ansi-bg-${bg}`);
    else if (bg === "inv-bg") cls.push("ansi-bg-inverse");
    if (style.bold) cls.push("ansi-bold");
    if (style.dim) cls.push("ansi-dim");
    if (style.italic) cls.push("ansi-italic");
    if (style.underline) cls.push("ansi-underline");
    return [cls, typeof fg === "string" && fg.startsWith("rgb") ? fg : null,
      typeof bg === "string" && bg.startsWith("rgb") ? bg : null];
  }

  // The terminal: lines of segments; only the lines that changed are re-rendered.
  class AnsiTerminal {
    constructor(element, maxLines) {
      this.el = element;
      this.maxLines = maxLines || 5000;
      this.reset();
    }

    reset() {
      this.style = defaultStyle();
      this.rest = "";
      this.lines = [[]]; // each line: [{text, style}]
      this.col = null; // null: cursor at end of line; a number after \r (overwrite mode)
      this.nodes = [];
      this.el.textContent = "";
      this.dirty = new Set([0]);
      this.render();
    }

    write(chunk) {
      const [ops, rest, style] = parse(this.rest + chunk, this.style);
      this.rest = rest;
      this.style = style;
      for (const op of ops) this.apply(op);
      this.render();
    }

    apply(op) {
      const last = this.lines.length - 1;
      if (op.nl) {
        this.lines.push([]);
        this.col = null;
        this.dirty.add(last + 1);
      } else if (op.cr) {
        this.col = 0;
      } else if (op.erase) {
        if (this.col !== null) this.truncate(last, this.col);
        this.dirty.add(last);
      } else if (op.bs) {
        const len = this.lineLength(last);
        this.col = Math.max(0, (this.col === null ? len : this.col) - 1);
      } else if (op.text) {
        if (this.col !== null) {
          // overwrite from the cursor: keep what is left of it, drop what the new text covers
          const keepTail = this.slice(last, this.col + op.text.length);
          this.truncate(last, this.col);
          this.lines[last].push({ text: op.text, style: op.style });
          for (const seg of keepTail) this.lines[last].push(seg);
          this.col += op.text.length;
          if (this.col >= this.lineLength(last)) this.col = null;
        } else {
          const segs = this.lines[last];
          const tail = segs[segs.length - 1];
          if (tail && sameStyle(tail.style, op.style)) tail.text += op.text;
          else segs.push({ text: op.text, style: op.style });
        }
        this.dirty.add(last);
      }
    }

    lineLength(index) {
      return this.lines[index].reduce((n, seg) => n + seg.text.length, 0);
    }

    truncate(index, col) {
      const out = [];
      let n = 0;
      for (const seg of this.lines[index]) {
        if (n >= col) break;
        const take = seg.text.slice(0, col - n);
        out.push({ text: take, style: seg.style });
        n += take.length;
      }
      this.lines[index] = out;
    }

    slice(index, from) {
      const out = [];
      let n = 0;
      for (const seg of this.lines[index]) {
        const end = n + seg.text.length;
        if (end > from) out.push({ text: seg.text.slice(Math.max(0, from - n)), style: seg.style });
        n = end;
      }
      return out;
    }

    render() {
      while (this.lines.length > this.maxLines) {
        this.lines.shift();
        const node = this.nodes.shift();
        if (node) node.remove();
        this.dirty = new Set([...this.dirty].map((i) => i - 1).filter((i) => i >= 0));
      }
      for (const index of [...this.dirty].sort((a, b) => a - b)) {
        let node = this.nodes[index];
        if (!node) {
          node = document.createElement("div");
          node.className = "line";
          this.nodes[index] = node;
          this.el.appendChild(node);
        }
        node.textContent = "";
        for (const seg of this.lines[index] || []) {
          const span = document.createElement("span");
          const [cls, fg, bg] = classFor(seg.style);
          if (cls.length) span.className = cls.join(" ");
          if (fg) span.style.color = fg;
          if (bg) span.style.backgroundColor = bg;
          span.textContent = seg.text;
          node.appendChild(span);
        }
        if (!node.firstChild) node.appendChild(document.createTextNode("\u200b")); // keep empty lines tall
      }
      this.dirty.clear();
      this.el.scrollTop = this.el.scrollHeight;
    }

    text() {
      return this.lines.map((line) => line.map((seg) => seg.text).join("")).join("\n");
    }
  }

  global.LLMMixerAnsi = { parse, applySgr, AnsiTerminal, defaultStyle };
})(window);
