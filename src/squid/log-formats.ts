/** access.log formats cuttle writes, by Squid's names (logformat squid, common, combined). */
export const LOG_FORMATS = ['squid', 'common', 'combined'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
