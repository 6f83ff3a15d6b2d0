import { describe, expect, it } from "vitest";

import { renderMarkdown } from "./markdown";

describe("renderMarkdown", () => {
  it("renders markdown", () => {
    const html = renderMarkdown("Run **npm test**:\n\n```sh\nnpm test\n```\n\n- a\n- b");
    expect(html).toContain("<strong>npm test</strong>");
    expect(html).toContain("<pre><code");
    expect(html).toContain("<li>a</li>");
  });
  it("removes anything active", () => {
    const html = renderMarkdown(
      '<script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">x</a><iframe src="https://e.com"></iframe><p style="color:red" onclick="x()">p</p>',
    );
    expect(html).not.toMatch(/script|onerror|javascript:|iframe|onclick|style=/i);
    expect(html).toContain("<p>p</p>");
  });
  it("loads no remote images and marks links noreferrer", () => {
    const html = renderMarkdown("![x](https://tracker.example/p.png) ![y](data:image/png;base64,AAAA) [site](https://example.com)");
    expect(html).not.toContain("tracker.example");
    expect(html).toContain('src="data:image/png;base64,AAAA"');
    expect(html).toMatch(/<a href="https:\/\/example.com" rel="noreferrer noopener">site<\/a>/);
  });
});
