-- The model catalog shipped with zenn-gateway: official list prices in micro-dollars per million tokens
-- (1 credit = 1 micro-dollar), per-image prices in credits. Loaded by `zenn-admin db migrate` with
-- INSERT IGNORE, so an operator's later `zenn-admin model set` changes are kept across upgrades.
-- Anthropic cache writes: 5-minute writes at 1.25x input, 1-hour writes at 2x input.

INSERT IGNORE INTO models (id, display_name, provider, kind, status, min_plan, price_input, price_output,
  price_cache_read, price_cache_write_5m, price_cache_write_1h, price_unit, created_unix, sort_order) VALUES
('claude-opus-4-7',        'Claude Opus 4.7',        'anthropic', 'chat', 'live', 'max', 15000000, 75000000, 1500000, 18750000, 30000000, NULL, 1776038400, 10),
('claude-opus-4-6',        'Claude Opus 4.6',        'anthropic', 'chat', 'live', 'pro', 15000000, 75000000, 1500000, 18750000, 30000000, NULL, 1770249600, 11),
('claude-sonnet-4-6',      'Claude Sonnet 4.6',      'anthropic', 'chat', 'live', 'pro',  3000000, 15000000,  300000,  3750000,  6000000, NULL, 1771286400, 12),
('claude-haiku-4-5',       'Claude Haiku 4.5',       'anthropic', 'chat', 'live', 'pro',  1000000,  5000000,  100000,  1250000,  2000000, NULL, 1760572800, 13),
('gpt-5.5',                'GPT-5.5',                'openai',    'chat', 'live', 'pro',  5000000, 30000000,  500000,     NULL,     NULL, NULL, 1776729600, 20),
('gpt-5.5-instant',        'GPT-5.5 Instant',        'openai',    'chat', 'live', 'pro',  5000000, 30000000,  500000,     NULL,     NULL, NULL, 1776729600, 21),
('gpt-5.5-pro',            'GPT-5.5 Pro',            'openai',    'chat', 'live', 'max', 30000000,180000000, 30000000,    NULL,     NULL, NULL, 1776729600, 22),
('gpt-5.4',                'GPT-5.4',                'openai',    'chat', 'live', 'pro',  5000000, 22500000,  500000,     NULL,     NULL, NULL, 1772668800, 23),
('gpt-5.3-codex',          'GPT-5.3 Codex',          'openai',    'chat', 'live', 'pro',  1750000, 14000000,  170000,     NULL,     NULL, NULL, 1770163200, 24),
('gpt-5.2',                'GPT-5.2',                'openai',    'chat', 'live', 'pro',  1750000, 14000000,  170000,     NULL,     NULL, NULL, 1765411200, 25),
('gemini-3.1-pro-preview', 'Gemini 3.1 Pro',         'gemini',    'chat', 'live', 'pro',  4000000, 18000000,  400000,     NULL,     NULL, NULL, 1771459200, 30),
('gemini-3-pro-preview',   'Gemini 3 Pro',           'gemini',    'chat', 'live', 'pro',  4000000, 18000000,  400000,     NULL,     NULL, NULL, 1763510400, 31),
('gemini-3-flash-preview', 'Gemini 3 Flash',         'gemini',    'chat', 'live', 'pro',   500000,  3000000,   50000,     NULL,     NULL, NULL, 1765843200, 32),
('deepseek-v4-pro',        'DeepSeek V4 Pro',        'deepseek',  'chat', 'live', 'pro',  1740000,  3480000,   10000,     NULL,     NULL, NULL, 1776988800, 40),
('deepseek-v4-flash',      'DeepSeek V4 Flash',      'deepseek',  'chat', 'live', 'pro',   140000,   280000,    2800,     NULL,     NULL, NULL, 1776988800, 41),
('kimi-k2.6',              'Kimi K2.6',              'moonshot',  'chat', 'live', 'pro',   950000,  4000000,  160000,     NULL,     NULL, NULL, 1776384000, 42),
('glm-5.1',                'GLM-5.1',                'zhipu',     'chat', 'live', 'pro',  1400000,  4400000,  260000,     NULL,     NULL, NULL, 1775692800, 43),
('gpt-image-2',            'GPT Image 2',            'openai',    'image','live', 'pro',     NULL,     NULL,    NULL,     NULL,     NULL, 60000, 1776729600, 50),
('nano-banana',            'Nano Banana',            'gemini',    'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1756166400, 60),
('nano-banana-pro',        'Nano Banana Pro',        'gemini',    'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1763596800, 61),
('gemini-3-pro-image-preview','Gemini 3 Pro Image',  'gemini',    'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1763596800, 62),
('seedream-4.5',           'Seedream 4.5',           'bytedance', 'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1764547200, 63),
('gpt-4o-image',           'GPT-4o Image',           'openai',    'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1743033600, 64),
('imagen-4',               'Imagen 4',               'gemini',    'image','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1747699200, 65),
('veo-3.1',                'Veo 3.1',                'gemini',    'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1760486400, 70),
('kling-3.0',              'Kling 3.0',              'kling',     'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1770163200, 71),
('seedance-2.0',           'Seedance 2.0',           'bytedance', 'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1770681600, 72),
('happyhorse-1.0',         'HappyHorse 1.0',         'happyhorse','video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1772323200, 73),
('minimax-hailuo',         'MiniMax Hailuo',         'minimax',   'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1750636800, 74),
('vidu-q3',                'Vidu Q3',                'vidu',      'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1769904000, 75),
('wan-2.6',                'WAN 2.6',                'alibaba',   'video','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1765497600, 76),
('fish-audio-tts',         'Fish Audio TTS',         'fishaudio', 'audio','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1754006400, 80),
('fish-audio-voice-clone', 'Fish Audio Voice Clone', 'fishaudio', 'audio','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1754006400, 81),
('fish-audio-asr',         'Fish Audio ASR',         'fishaudio', 'audio','coming_soon','pro', NULL, NULL, NULL, NULL, NULL, NULL, 1754006400, 82);

-- Providers' dated snapshot ids and common spellings that clients send.
INSERT IGNORE INTO model_aliases (alias, model_id) VALUES
('claude-haiku-4-5-20251001', 'claude-haiku-4-5'),
('claude-haiku-4-5-latest',   'claude-haiku-4-5'),
('claude-sonnet-4-6-latest',  'claude-sonnet-4-6'),
('claude-opus-4-6-latest',    'claude-opus-4-6'),
('claude-opus-4-7-latest',    'claude-opus-4-7'),
('gpt-5.5-latest',            'gpt-5.5'),
('gemini-3-flash',            'gemini-3-flash-preview'),
('gemini-3-pro',              'gemini-3-pro-preview'),
('gemini-3.1-pro',            'gemini-3.1-pro-preview'),
-- Default models the CLIs ask for when the user names none: plain `claude` runs Sonnet 4.6 here,
-- and Gemini CLI's routing call (flash-lite) is served by Gemini 3 Flash.
('claude-opus-5-5',           'claude-sonnet-4-6'),
('gemini-3.5-flash-lite',     'gemini-3-flash-preview'),
('gemini-3.1-flash-lite',     'gemini-3-flash-preview'),
('deepseek-chat',             'deepseek-v4-flash'),
('deepseek-reasoner',         'deepseek-v4-pro');

-- Context windows and long-context tiers (migration 3). Set once for the shipped models; an operator's
-- `zenn-admin model set --context … --long-…` is kept across upgrades (only NULL context windows are
-- filled). A request whose input (all kinds) exceeds long_threshold is priced whole at the long
-- prices: Anthropic's 1M-context beta above 200K tokens, OpenAI above 272K, Gemini Pro above 200K.
UPDATE models SET context_window = 200000, long_threshold = 200000,
       long_input = price_input * 2, long_output = price_output * 3 DIV 2, long_cache_read = price_cache_read * 2
 WHERE id IN ('claude-opus-4-7', 'claude-opus-4-6', 'claude-sonnet-4-6') AND context_window IS NULL;
UPDATE models SET context_window = 200000 WHERE id = 'claude-haiku-4-5' AND context_window IS NULL;
UPDATE models SET context_window = 1050000, long_threshold = 272000,
       long_input = price_input * 2, long_output = price_output * 3 DIV 2, long_cache_read = price_cache_read * 2
 WHERE id IN ('gpt-5.5', 'gpt-5.5-instant', 'gpt-5.5-pro', 'gpt-5.4') AND context_window IS NULL;
UPDATE models SET context_window = 400000 WHERE id IN ('gpt-5.3-codex', 'gpt-5.2') AND context_window IS NULL;
UPDATE models SET context_window = 1048576, long_threshold = 200000,
       long_input = price_input * 2, long_output = price_output * 3 DIV 2, long_cache_read = price_cache_read * 2
 WHERE id IN ('gemini-3.1-pro-preview', 'gemini-3-pro-preview') AND context_window IS NULL;
UPDATE models SET context_window = 1048576 WHERE id = 'gemini-3-flash-preview' AND context_window IS NULL;
UPDATE models SET context_window = 1000000 WHERE id IN ('deepseek-v4-pro', 'deepseek-v4-flash') AND context_window IS NULL;
UPDATE models SET context_window = 262144 WHERE id = 'kimi-k2.6' AND context_window IS NULL;
UPDATE models SET context_window = 200000 WHERE id = 'glm-5.1' AND context_window IS NULL;
