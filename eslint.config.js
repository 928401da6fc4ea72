// ESLint flat config for Klinika's own browser scripts: classic scripts ("use strict" IIFEs,
// loaded with <script defer>) on the pages and injected into the OHIF viewer. The OHIF bundle
// itself (klinika-data/cache) is third-party and not linted.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    // third-party code and generated folders (node_modules is ignored by default)
    ignores: [".venv/", "klinika-data/", "test-artifacts/", "build/", "tests/data/"],
  },
  js.configs.recommended,
  {
    files: ["klinika/web/pages/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      strict: ["error", "global"],
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
