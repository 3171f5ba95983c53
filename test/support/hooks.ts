/** Mocha root hooks shared by every test file. */
import sinon from 'sinon';

export const mochaHooks = {
  afterEach(): void {
    sinon.restore();
  },
};
