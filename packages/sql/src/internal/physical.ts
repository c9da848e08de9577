/**
 * The physical layout of table data: one PostgreSQL table per Tessera table
 * (`tessera_data.t_<id>`), a column `c_<id>` per stored column, and rows
 * versioned by `v_min`/`v_max` (`LIVE`: not ended).
 */

/** `v_max` of a row version that has not ended. */
export const LIVE = 2147483647

/** How cell states are stored (`s_<id>`). */
export const STATE_CODE = { pending: 0, done: 1, error: 2 } as const
export const STATE_NAME = ["pending", "done", "error"] as const

export const tableName = (id: number) => `tessera_data.t_${id}`

/** The value column of a stored column. */
export const valueCol = (id: number) => `c_${id}`
