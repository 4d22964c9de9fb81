import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The clock is the only place that may read wall time or schedule timers in the agent core.
    files: ['src/cache/**/*.ts', 'src/server/**/*.ts', 'src/upstream/**/*.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Use the injected Clock (src/util/clock.ts).' },
        {
          object: 'performance',
          property: 'now',
          message: 'Use the injected Clock (src/util/clock.ts).',
        },
      ],
    },
  },
  {
    files: ['src/cli/**/*.ts', 'src/main.ts', 'bench/**/*.js', 'test/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
)
