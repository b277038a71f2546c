/**
 * A line-protocol chat server: every line a client sends is said to everyone else in the room; lines starting
 * with `/` are commands. Talk to it with `nc 127.0.0.1 7000` or `socat - TCP:127.0.0.1:7000`.
 *
 * ```
 * S: * welcome to loopwork chat, guest1; /help for commands
 * C: /nick ada                    S: * you are now ada          (others: * guest1 is now ada)
 * C: hello all                    (others: <ada> hello all)
 * C: /who                         S: * 2 here: ada, guest2
 * C: /quit bye                    S: * bye                      (others: * ada left (bye))
 * ```
 *
 * Commands: `/nick NAME` (1-24 of letters, digits, `_`, `-`; unique in the room), `/who`, `/me ACTION`, `/help`,
 * `/quit [MESSAGE]`. A client that does not read its messages is not allowed to fill the server's memory: while
 * its connection's write buffer is over the high-water mark, messages to it are dropped (and it is told how many
 * once it catches up).
 *
 * The server is `pipeline(lines(), utf8(), route(...))` served by an app on a TCP listener: SIGINT/SIGTERM close
 * it gracefully (exit 0).
 *
 * Run: `node --conditions=loopwork-source --import tsx apps/examples/src/chat.ts [--host 127.0.0.1] [--port 7000]`;
 * it prints `chat listening on tcp://HOST:PORT`.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import {
  CommandError,
  MessageValidationError,
  command,
  createApp,
  lines,
  pipeline,
  route,
  utf8,
  z,
} from '@loopwork/service';
import type { CommandContext, MessageContext, ProtocolFactory } from '@loopwork/service';

type Out = string | Uint8Array;
type Conn = MessageContext<Out>;

interface Member {
  nick: string;
  /** Messages dropped while the member's connection was not reading. */
  dropped: number;
}

/** The room: who is connected, under which nick. */
class Room {
  readonly members = new Map<Conn, Member>();
  #guests = 0;

  join(conn: Conn): Member {
    const member = { nick: `guest${++this.#guests}`, dropped: 0 };
    this.members.set(conn, member);
    return member;
  }

  leave(conn: Conn): Member | undefined {
    const member = this.members.get(conn);
    this.members.delete(conn);
    return member;
  }

  taken(nick: string): boolean {
    for (const m of this.members.values()) if (m.nick.toLowerCase() === nick.toLowerCase()) return true;
    return false;
  }

  /** Sends a line to everyone but `except`; a member whose writing is paused misses it (and is told later). */
  broadcast(line: string, except: Conn | null = null): void {
    for (const [conn, member] of this.members) {
      if (conn === except) continue;
      if (conn.transport.isWritingPaused()) {
        member.dropped++;
        continue;
      }
      if (member.dropped > 0) {
        conn.write(`* (${member.dropped} messages dropped while you were not reading)`);
        member.dropped = 0;
      }
      conn.write(line);
    }
  }
}

const Nick = z.string().regex(/^[A-Za-z0-9_-]{1,24}$/, 'a nick is 1-24 letters, digits, _ or -');

const HELP = [
  '* commands:',
  '*   /nick NAME     choose your nick',
  '*   /who           who is here',
  '*   /me ACTION     * NAME ACTION',
  '*   /quit [MSG]    leave',
  '* anything else is said to the room',
].join('\n');

/** The chat service's protocol factory, on its own room. */
function chatFactory(room: Room = new Room()): ProtocolFactory {
  const me = (ctx: CommandContext<string, Out, unknown>): Member => room.members.get(ctx.connection)!;
  const rest = (line: string): string => line.replace(/^\/\S*\s?/, '');
  return pipeline(
    lines({ maxLength: 2048, onError: (e) => `* error: ${e.message}` }),
    utf8({ onError: () => '* error: lines must be UTF-8' }),
    route<string, Out>(
      {
        say: (ctx) => {
          const text = ctx.message.startsWith('/say') ? rest(ctx.message) : ctx.message;
          if (text.trim() === '') return undefined;
          room.broadcast(`<${me(ctx).nick}> ${text}`, ctx.connection);
          return undefined;
        },
        nick: command(z.tuple([Nick]), (ctx) => {
          const member = me(ctx);
          const [nick] = ctx.input;
          if (nick === member.nick) return `* you are already ${nick}`;
          if (room.taken(nick)) throw new CommandError(`nick ${nick} is taken`);
          const old = member.nick;
          member.nick = nick;
          room.broadcast(`* ${old} is now ${nick}`, ctx.connection);
          return `* you are now ${nick}`;
        }),
        who: () => {
          const nicks = [...room.members.values()].map((m) => m.nick).sort();
          return `* ${nicks.length} here: ${nicks.join(', ')}`;
        },
        me: (ctx) => {
          room.broadcast(`* ${me(ctx).nick} ${rest(ctx.message)}`, ctx.connection);
          return undefined;
        },
        help: () => HELP,
        quit: (ctx) => {
          const why = rest(ctx.message).trim();
          ctx.connection.state.quitMessage = why;
          ctx.write('* bye');
          ctx.close();
        },
      },
      {
        format: 'text',
        // A line is a command when it starts with `/`; anything else is said to the room.
        key: (line) => (line.startsWith('/') ? line.slice(1).split(/\s/, 1)[0] : 'say'),
        // Refused commands are the user's mistake: say why. Anything else was logged; say little.
        onError: (err) =>
          CommandError.isInstance(err) || MessageValidationError.isInstance(err)
            ? `* error: ${(err as Error).message}`
            : '* error: internal error',
        notFound: (ctx) => `* unknown command /${ctx.command}; /help for the list`,
        onConnect: (conn) => {
          const member = room.join(conn);
          conn.write(`* welcome to loopwork chat, ${member.nick}; /help for commands`);
          room.broadcast(`* ${member.nick} joined`, conn);
        },
        onDisconnect: (conn) => {
          const member = room.leave(conn);
          if (member === undefined) return;
          const why = typeof conn.state.quitMessage === 'string' && conn.state.quitMessage !== '';
          room.broadcast(`* ${member.nick} left${why ? ` (${String(conn.state.quitMessage)})` : ''}`);
        },
      },
    ),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '7000' } },
  });
  const app = createApp({
    logger: { level: process.env.LOG_LEVEL ?? 'info', name: 'chat' },
    health: false,
    metrics: false,
  });
  await app.listen({ tcp: { host: values.host, port: Number(values.port), protocol: chatFactory() } });
  const addr = app.addresses()[0]!;
  console.log(`chat listening on ${addr.url} (try: nc ${addr.host ?? values.host} ${addr.port ?? values.port})`);
}

await main();
