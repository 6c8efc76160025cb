/**
 * kill -9 chaos, part 1 of 2: see test/harness/fixtures/chaos.ts (the interrupts are split over
 * two files so that tap runs them in parallel).
 */
import t from 'tap'
import { chaosPart } from './fixtures/chaos.ts'

chaosPart(t, 1)
