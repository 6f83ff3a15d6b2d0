// Markdown to safe HTML: marked renders, DOMPurify removes anything active
// (scripts, event handlers, javascript: URLs, iframes, forms). Images load only
// from data: URLs: the UI makes no network requests of its own.
import DOMPurify from "dompurify";
import { Marked } from "marked";

const marked = new Marked({ gfm: true, breaks: false, async: false });

let hooked = false;
function hook() {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "IMG") {
      const src = node.getAttribute("src") ?? "";
      if (!src.startsWith("data:image/")) node.removeAttribute("src");
    }
    if (node.tagName === "A") node.setAttribute("rel", "noreferrer noopener");
  });
}

export function renderMarkdown(src: string): string {
  hook();
  const html = marked.parse(src, { async: false }) as string;
  return DOMPurify.sanitize(html, {
    USE_PROFILES: { html: true },
    FORBID_TAGS: ["style", "form", "input", "button", "iframe", "object", "embed"],
    FORBID_ATTR: ["style"],
  });
}
