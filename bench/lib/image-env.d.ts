export declare function parseImageEnv(text: string): Record<string, string>
export declare function parseImageNodeArgs(text: string): string[]
export declare function imageEnv(): Record<string, string>
export declare function imageNodeArgs(): string[]
