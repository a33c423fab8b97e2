// Lint: TypeScript rules plus the layer rule (core ← adapters ← functions ← local/infra).
import tseslint from 'typescript-eslint';

const nodeIo = ['fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http',
  'https', 'node:https', 'child_process', 'node:child_process', 'dgram', 'node:dgram', 'worker_threads',
  'node:worker_threads', 'node:http2', 'http2', 'node:dns', 'dns', 'node:process', 'process'];

const layer = (name, forbidden) => ({
  files: [`${name}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      paths: name === 'core' ? nodeIo.map((p) => ({ name: p, message: 'core/ is pure: no node I/O.' })) : [],
      patterns: [
        ...forbidden.map((dir) => ({
          group: [`**/${dir}/*`, `**/${dir}`],
          message: `${name}/ may not import from ${dir}/ (imports flow core ← adapters ← functions ← local/infra).`,
        })),
        ...(name === 'core'
          ? [{ group: ['@aws-sdk/*', 'aws-cdk-lib', 'aws-cdk-lib/*', 'constructs'], message: 'core/ is pure: no AWS SDK or CDK.' }]
          : []),
      ],
    }],
  },
});

export default tseslint.config(
  { ignores: ['node_modules/**', 'cdk.out/**', 'bench/results/**', 'local/web/vendor/**', '**/*.mjs', '.data/**', '.rehearsal/**', '.build/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layer('core', ['adapters', 'functions', 'local', 'infra']),
  {
    // A work mark's stored forms are written in one place (core/work-mark.ts): build them with WorkMark.*.
    files: ['core/**/*.ts', 'adapters/**/*.ts', 'functions/**/*.ts', 'local/**/*.ts'],
    ignores: ['core/work-mark.ts'],
    rules: {
      'no-restricted-syntax': ['error', {
        selector: 'TemplateLiteral > TemplateElement:first-child[value.raw=/^(fan-out|parent|settle|aggregate|sync|callback|dlq):$/]',
        message: 'Build work marks with WorkMark.* (core/work-mark.ts).',
      }],
    },
  },
  layer('adapters', ['functions', 'local', 'infra']),
  layer('functions', ['local', 'infra']),
  layer('local', ['infra']),
  layer('infra', ['local']),
);
