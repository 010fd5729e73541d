-- The sandbox of every script and function, run once when the Lua state is
-- created (chunk name "=redis_lib": the error handler skips its frames).
-- Arguments from Rust: the run slots (ctx), sha1hex, log, rand48 draw and
-- seed, the Redis version text and number.
local ctx, raw_sha1, raw_log, raw_rand, raw_seed, version, version_num = ...
local G = _G
local type, error, tostring, tonumber, select, rawget, rawset = type, error, tostring, tonumber, select, rawget, rawset
local setmetatable, getmetatable, unpack, floor = setmetatable, getmetatable, unpack, math.floor
local orig_pcall, orig_loadstring, concat = pcall, loadstring, table.concat

-- Tables a script may not change.
local readonly = setmetatable({}, { __mode = 'k' })
local function ro_error()
  error('Attempt to modify a readonly table', 2)
end

-- A read-only view of t: reads go to t, writes fail, and its metatable is
-- itself read-only.
local function protect(t)
  local mt = { __index = t, __newindex = ro_error }
  local mt_view = setmetatable({}, { __index = mt, __newindex = ro_error, __metatable = false })
  readonly[mt_view] = true
  mt.__metatable = mt_view
  local p = setmetatable({}, mt)
  readonly[p] = true
  return p
end

-- luaPushErrorBuff: "-CODE msg" keeps its code, anything else gets ERR.
local function err_table(s)
  local code, msg
  if s:sub(1, 1) == '-' then
    local sp = s:find(' ', 1, true)
    if sp then
      code, msg = s:sub(2, sp - 1), s:sub(sp + 1)
    else
      code, msg = 'ERR', s:sub(2)
    end
  else
    code, msg = 'ERR', s
  end
  msg = (msg:gsub('^[\r\n]+', ''))
  msg = (msg:gsub('[\r\n]+$', ''))
  return { err = code .. ' ' .. msg }
end

local function raise(msg)
  error(err_table(msg))
end

local redis = {}
-- redis.call and redis.pcall are set by Rust for each run (C functions, so
-- that a tail call keeps the script's frame for error positions).
redis.sha1hex = raw_sha1
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  if e:sub(1, 1) ~= '-' then
    e = '-' .. e
  end
  return err_table(e)
end
redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  return { ok = s }
end
redis.log = function(...)
  local n = select('#', ...)
  if n < 2 then
    raise('redis.log() requires two arguments or more.')
  end
  local level = tonumber((...))
  if level == nil then
    raise('First argument must be a number (log level).')
  end
  if level < 0 or level > 3 then
    raise('Invalid debug level.')
  end
  raw_log(...)
end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.setresp = ctx.setresp
-- Scripts are logged by their effects: replication flags are accepted and
-- change nothing.
redis.set_repl = function(...)
  if not ctx.raw then
    raise('redis.set_repl can only be called inside a script invocation')
  end
  if select('#', ...) ~= 1 then
    raise('redis.set_repl() requires two arguments.')
  end
  local f = tonumber((...)) or 0
  if f ~= 0 and f ~= 1 and f ~= 2 and f ~= 3 then
    raise('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
end
redis.replicate_commands = function()
  return true
end
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
redis.REDIS_VERSION, redis.REDIS_VERSION_NUM = version, version_num
redis.breakpoint = function()
  return false
end
redis.debug = function() end
redis.acl_check_cmd = function(...)
  if not ctx.raw then
    raise('redis.acl_check_cmd can only be called inside a script invocation')
  end
  if select('#', ...) == 0 then
    raise('Please specify at least one argument for this redis lib call')
  end
  if not ctx.known((...)) then
    raise('Invalid command passed to redis.acl_check_cmd()')
  end
  return true
end
redis.register_function = function(...)
  local reg = ctx.register
  if not reg then
    raise('redis.register_function can only be called on FUNCTION LOAD command')
  end
  local a, b = ...
  if type(a) == 'table' then
    if select('#', ...) ~= 1 then
      raise('wrong number of arguments to redis.register_function')
    end
    local name, callback, flags, description
    for k, v in pairs(a) do
      if k == 'function_name' then
        name = v
      elseif k == 'callback' then
        callback = v
      elseif k == 'flags' then
        flags = v
      elseif k == 'description' then
        description = v
      else
        raise('unknown argument given to redis.register_function')
      end
    end
    if type(name) ~= 'string' then
      raise('function_name argument given to redis.register_function must be a string')
    end
    if type(callback) ~= 'function' then
      raise('callback argument given to redis.register_function must be a function')
    end
    if flags ~= nil and type(flags) ~= 'table' then
      raise('flags argument to redis.register_function must be a table representing function flags')
    end
    if description ~= nil and type(description) ~= 'string' then
      raise('description argument given to redis.register_function must be a string')
    end
    local list = {}
    for _, f in ipairs(flags or {}) do
      if type(f) ~= 'string' then
        raise('unknown flag given')
      end
      list[#list + 1] = f
    end
    local e = reg(name, callback, list, description)
    if e then
      raise(e)
    end
    return
  end
  if select('#', ...) ~= 2 then
    raise('wrong number of arguments to redis.register_function')
  end
  if type(a) ~= 'string' then
    raise('first argument to redis.register_function must be a string')
  end
  if type(b) ~= 'function' then
    raise('second argument to redis.register_function must be a function')
  end
  local e = reg(a, b, {}, nil)
  if e then
    raise(e)
  end
end

-- Redis's math.random: rand48, the same sequence everywhere for one seed.
local rand_max = 2147483647
math.random = function(...)
  local r = (raw_rand() % rand_max) / rand_max
  local n = select('#', ...)
  if n == 0 then
    return r
  elseif n == 1 then
    local u = tonumber((...))
    if u == nil then
      error("bad argument #1 to 'random' (number expected)", 2)
    end
    u = u >= 0 and floor(u) or -floor(-u)
    if u < 1 then
      error("bad argument #1 to 'random' (interval is empty)", 2)
    end
    return floor(r * u) + 1
  elseif n == 2 then
    local l, u = tonumber((...)), tonumber((select(2, ...)))
    if l == nil or u == nil then
      error("bad argument to 'random' (number expected)", 2)
    end
    l = l >= 0 and floor(l) or -floor(-l)
    u = u >= 0 and floor(u) or -floor(-u)
    if l > u then
      error("bad argument #2 to 'random' (interval is empty)", 2)
    end
    return floor(r * (u - l + 1)) + l
  end
  error('wrong number of arguments', 2)
end
math.randomseed = function(s)
  local n = tonumber(s)
  if n == nil then
    error("bad argument #1 to 'randomseed' (number expected)", 2)
  end
  raw_seed(n)
end

-- Redis 7's pcall: an error table with an err field becomes its text.
G.pcall = function(f, ...)
  local r = { orig_pcall(f, ...) }
  if not r[1] then
    if type(r[2]) == 'table' and type(rawget(r[2], 'err')) == 'string' then
      r[2] = rawget(r[2], 'err')
    elseif type(r[2]) == 'userdata' then
      r[2] = ctx.errtext(r[2])
    end
  end
  return unpack(r, 1, r[1] and table.maxn(r) or 2)
end

-- No bytecode, and loaded chunks see the sandbox too.
local env
G.loadstring = function(s, name)
  if type(s) == 'string' and s:byte(1) == 27 then
    return nil, 'binary chunks are not allowed'
  end
  local f, e = orig_loadstring(s, name)
  if f and env then
    setfenv(f, env)
  end
  return f, e
end
G.load = function(f, name)
  if type(f) ~= 'function' then
    return G.loadstring(f, name)
  end
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then
      break
    end
    parts[#parts + 1] = p
  end
  return G.loadstring(concat(parts), name)
end
G.setmetatable = function(t, mt)
  if readonly[t] then
    error('Attempt to modify a readonly table', 2)
  end
  return setmetatable(t, mt)
end
G.rawset = function(t, k, v)
  if readonly[t] then
    error('Attempt to modify a readonly table', 2)
  end
  return rawset(t, k, v)
end

G.print, G.dofile, G.loadfile, G.module, G.require = nil, nil, nil, nil, nil
G.redis = protect(redis)
for _, lib in ipairs({ 'string', 'math', 'table', 'coroutine', 'bit', 'cjson', 'cmsgpack', 'struct' }) do
  if rawget(G, lib) then
    G[lib] = protect(G[lib])
  end
end

-- What a script sees: its own globals (_G, KEYS, ARGV) over the libraries,
-- nothing writable, and reading a missing global is an error.
local own = setmetatable({}, { __index = G })
env = setmetatable({}, { __index = own, __newindex = ro_error })
readonly[env] = true
getmetatable(env).__metatable = protect(getmetatable(env))
own._G = env
setmetatable(G, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
})

-- Runs f (with KEYS and ARGV as arguments for a function) under the error
-- handler; returns ok, result.
local function run(f, handler, nargs, keys, args)
  return xpcall(function()
    if nargs == 0 then
      return f()
    end
    return f(keys, args)
  end, handler)
end

return env, own, run, redis
