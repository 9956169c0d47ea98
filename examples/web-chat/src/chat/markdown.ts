// An answer's text as Markdown: markdown-it (raw HTML off) renders it, DOMPurify sanitizes what comes out
// before it reaches the page, highlight.js colours code blocks. A model's answer is text someone else may have
// steered (a web page it read, a file it was sent), so it never adds markup, scripts, handlers or links that run
// code, and nothing it writes loads from the network without a click.
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import MarkdownIt from "markdown-it";
import { el } from "./elements";

// A handful of common languages (each registers its aliases: js, ts, py, sh, html, yml...) keeps the bundle small.
const LANGUAGES = { bash, css, javascript, json, python, sql, typescript, xml, yaml };
for (const [name, language] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, language);

const markdown = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true, // a model's single newline is a line break, as it meant it
  highlight(code: string, language: string): string {
    if (!language || !hljs.getLanguage(language)) return ""; // markdown-it escapes it
    const { value } = hljs.highlight(code, { language, ignoreIllegals: true });
    const name: string = markdown.utils.escapeHtml(language);
    return `<pre><code class="hljs language-${name}">${value}</code></pre>`;
  },
});
// Only links written with their scheme: file names such as notes.md or setup.py are no links to .md or .py hosts.
markdown.linkify.set({ fuzzyLink: false });
// An image would load whatever address the model chose as soon as the answer shows (a way to send what the
// conversation holds to anyone): `![alt](url)` stays a link, opened by a click.
markdown.disable("image");

const purify = DOMPurify(window);
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});
const SANITIZE = {
  ALLOWED_TAGS: [
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p",
    "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
  ],
  ALLOWED_ATTR: ["class", "href", "start", "title"],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  RETURN_DOM_FRAGMENT: true as const,
};

/** The safe DOM for a Markdown text. */
function rendered(source: string): DocumentFragment {
  // Trimmed: no whitespace after the last block, so a one-paragraph answer's text is exactly what was said.
  const fragment = purify.sanitize(markdown.render(source).trim(), SANITIZE);
  for (const code of fragment.querySelectorAll("pre > code")) code.before(copyButton(code));
  return fragment;
}

/** Copies its code block; a button without text of its own (its label is its aria-label), like the bubbles'. */
function copyButton(code: Element): HTMLElement {
  const label = "Copy code";
  const button = el("button", { type: "button", class: "icon copy", "data-action": "copy", "aria-label": label, title: label });
  button.hidden = !navigator.clipboard; // only on a secure origin (https, localhost)
  button.addEventListener("click", () => {
    void navigator.clipboard.writeText(code.textContent ?? "").then(() => {
      button.setAttribute("data-copied", "");
      setTimeout(() => button.removeAttribute("data-copied"), 1500);
    });
  });
  return button;
}

/** Runs a render; given to a block when it is made, to keep the conversation scrolled to its end, say. */
export type AroundRender = (render: () => void) => void;

interface Block {
  source: string;
  frame: number;
  around: AroundRender;
}

const blocks = new WeakMap<HTMLElement, Block>();

function blockOf(element: HTMLElement): Block {
  const block = blocks.get(element);
  if (!block) throw new Error("not a Markdown block of markdownBlock()");
  return block;
}

function render(element: HTMLElement, block: Block): void {
  cancelAnimationFrame(block.frame);
  block.frame = 0;
  block.around(() => element.replaceChildren(rendered(block.source)));
}

/** A new block showing `source` as Markdown; its later renders go through `around`. */
export function markdownBlock(source: string, around: AroundRender = (render) => render()): HTMLElement {
  const element = el("div", { class: "markdown" });
  element.append(rendered(source));
  blocks.set(element, { source, frame: 0, around });
  return element;
}

/** The Markdown text a block shows (or is about to). */
export function markdownOf(element: HTMLElement): string {
  return blockOf(element).source;
}

/** Shows another text in the block, now. */
export function setMarkdown(element: HTMLElement, source: string): void {
  const block = blockOf(element);
  block.source = source;
  render(element, block);
}

/**
 * Adds a streamed delta. The block renders again at most once an animation frame, however many deltas come
 * in meanwhile; an unclosed code fence renders as a code block to the end.
 */
export function appendMarkdown(element: HTMLElement, delta: string): void {
  const block = blockOf(element);
  block.source += delta;
  if (!block.frame) block.frame = requestAnimationFrame(() => render(element, block));
}

/** Renders a delta still waiting for its frame now: the answer ended, and shows as it is stored. */
export function flushMarkdown(element: HTMLElement): void {
  const block = blockOf(element);
  if (block.frame) render(element, block);
}
