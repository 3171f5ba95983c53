/** Mocha root hooks shared by every test file. */
import sinon from 'sinon';
import { destroyTestEnvironment } from './environment.js';

export const mochaHooks = {
  afterEach(): void {
    sinon.restore();
  },
  async afterAll(): Promise<void> {
    await destroyTestEnvironment();
  },
};
