// highlight.js types its core but not its language modules (highlight.js/lib/languages/*).
declare module "highlight.js/lib/languages/*" {
  import type { LanguageFn } from "highlight.js";
  const language: LanguageFn;
  export default language;
}
