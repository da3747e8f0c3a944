// ESLint's flat config for relaybridge's browser scripts (`make lint`, pre-commit, CI).
//
// The scripts are plain ES2017 served as they are (no build step), each one IIFE in
// "use strict" mode, so the rules below hold them to that and to one shared style.
import js from "@eslint/js";
import stylistic from "@stylistic/eslint-plugin";
import globals from "globals";

export default [
  { ignores: ["node_modules/**", ".venv/**", "build/**", "dist/**"] },
  js.configs.recommended,
  {
    files: ["relaybridge/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2017,
      sourceType: "script",
      // `module` and `require` only where they exist: the scripts also load in Node's
      // test runner (tests/js), where each one exports its parts.
      globals: { ...globals.browser, module: "readonly", require: "readonly" },
    },
    plugins: { "@stylistic": stylistic },
    rules: {
      strict: ["error", "function"],
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-implicit-globals": "error",
      // ES2017 has no optional catch binding: `catch (err)` must name what it ignores.
      "no-unused-vars": ["error", { args: "none", caughtErrors: "none" }],
      "@stylistic/indent": ["error", 2, { SwitchCase: 1 }],
      "@stylistic/quotes": ["error", "double", { avoidEscape: true }],
      "@stylistic/semi": ["error", "always"],
      "@stylistic/max-len": ["error", { code: 100, ignoreUrls: true, ignoreRegExpLiterals: true }],
      "@stylistic/comma-dangle": ["error", "always-multiline"],
      "@stylistic/brace-style": ["error", "1tbs", { allowSingleLine: true }],
      "@stylistic/no-trailing-spaces": "error",
      "@stylistic/eol-last": "error",
    },
  },
  {
    // The scripts' unit tests, run by `node --test` (CommonJS, Node's globals).
    files: ["tests/js/**/*.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "commonjs", globals: { ...globals.node } },
  },
  {
    files: ["**/*.mjs"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
