/**
 * Jest runs the unit tests of the pure modules (labextension/src/*.ts that import
 * nothing from JupyterLab at run time), so no browser and no JupyterLab bundle
 * transform is needed.
 */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/labextension/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  collectCoverageFrom: [
    'labextension/src/{api,findings,gatestate,histogram,jobs,literal,review,settings,timeleft,trans}.ts'
  ],
  coverageReporters: ['text-summary', 'text']
};
