// apache-md5 and apache-crypt ship no types: each exports one function (password, salt-or-hash) → hash.
declare module 'apache-md5' {
  export default function md5(password: string, salt?: string): string;
}
declare module 'apache-crypt' {
  export default function crypt(password: string, salt?: string): string;
}
