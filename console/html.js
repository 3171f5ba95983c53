// htm bound to preact: the console's JSX-free templates.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);
