/** Read models and CRUD outside the run lifecycle: secrets, assets, deliverables. */
export {};
