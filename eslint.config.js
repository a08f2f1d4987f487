// ESLint (flat config): typescript-eslint's type-checked recommended rules over the TypeScript sources
// (src, test, bench and the configs), ESLint's recommended rules over the plain JavaScript (bin, scripts,
// bench). Formatting is prettier's (.prettierrc.json, `npm run format`), not ESLint's.
import eslint from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/', '.dist-*/', 'node_modules/', 'coverage/']},
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [eslint.configs.recommended],
    languageOptions: {globals: globals.node},
  },
  {
    files: ['**/*.ts'],
    extends: [eslint.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {parserOptions: {projectService: {allowDefaultProject: ['*.config.ts']}, tsconfigRootDir: import.meta.dirname}},
    rules: {
      // The rules that matter most here, stated even where the presets already hold them.
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none'}],
      // `xs[i]!`: the code marks indexed reads as if noUncheckedIndexedAccess were on, a reminder that
      // the index was checked; with it off, this rule calls every such `!` unnecessary.
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // oclif's API takes functions that return promises (flag parsers, defaults, hooks, catch):
      // `async` is how they are written, awaiting or not.
      '@typescript-eslint/require-await': 'off',
      // A catch that passes on what it caught, as it is, is not a new rejection with a non-Error.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', {allowThrowingUnknown: true}],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // vitest's asymmetric matchers (expect.objectContaining, ...) are typed `any` by design.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      // Tests save process.stdout.write and the like to put them back afterwards.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    rules: {
      // Matching control characters is the point wherever a pattern here names one: escaping them in
      // messages, finding terminal colour codes (ESC) in output.
      'no-control-regex': 'off',
    },
  },
)
