"""简体中文模板：全角标点，句子之间不加空格。"""

SEP = ""
QUOTES = ("“", "”")
LIST_AND = "和"

FRAMES: dict[str, dict[str, list[str]]] = {
    "greet": {
        "*": ["{first}，你好！"],
        "friendly": ["嗨，{first}！", "{first}，你好呀！", "{first}，好久不见！"],
        "premium": ["尊敬的{first}：", "亲爱的{first}："],
        "playful": ["嘿，{first}！", "哈喽，{first}！"],
        "informative": ["{first}，您好："],
    },
    "greet_anon": {
        "*": ["你好！"],
        "friendly": ["嗨！"],
        "premium": ["您好："],
        "playful": ["哈喽！"],
        "informative": ["您好："],
    },
    "hook": {
        "friendly": [
            "我们为你找到了一件好物。",
            "这件也许正合你意。",
            "看看我们为你挑选的这一件。",
            "看到它，我们就想到了你。",
            "这份推荐专门为你准备。",
            "有一件好物想和你分享。",
            "最近有件东西很适合你。",
        ],
        "premium": [
            "我们为您精心挑选了一件特别之选。",
            "用心甄选，只为懂得品味的您。",
            "有些好物值得细细品味。",
            "这一件，我们特意为您留意。",
        ],
        "urgent": ["现在正是入手的好时机。", "千万别错过。", "时间有限，抓紧行动。", "机会难得。"],
        "playful": [
            "想给自己一点小惊喜吗？",
            "快看我们发现了什么！",
            "你的下一个心头好也许就在这里。",
            "惊喜来啦！我们为你挑了一件好物。",
        ],
        "informative": ["以下是为您挑选的产品信息。", "简要介绍如下。", "您需要了解的信息如下。"],
    },
    "for_you": {
        "*": [
            "你喜欢{category}，所以我们选了它。",
            "来自你喜欢的{category}类别。",
            "为喜欢{category}的你精选。",
            "你常看{category}，这件也许合你心意。",
        ],
    },
    "product": {
        "*": ["为你推荐{name}。", "来看看{name}。", "认识一下{name}。"],
        "premium": ["隆重推荐{name}。"],
        "informative": ["产品：{name}。"],
    },
    "product_price": {
        "*": [
            "{name}，售价{price}。",
            "{name}仅需{price}。",
            "只要{price}，就能把{name}带回家。",
            "{name}的价格是{price}。",
            "推荐{name}，价格{price}。",
            "{name}的售价为{price}。",
            "{price}即可入手{name}。",
        ],
        "premium": ["{name}，售价{price}。"],
        "informative": ["{name}价格：{price}。"],
    },
    "point": {
        "*": [
            "亮点：{point}。",
            "我们喜欢的细节：{point}。",
            "特色：{point}。",
            "值得一提：{point}。",
        ],
        "premium": ["精致细节：{point}。"],
        "informative": ["产品特点：{point}。"],
    },
    "quote": {
        "*": ["一位顾客写道：{quote}", "来自顾客评价：{quote}", "买家评价：{quote}"],
    },
    "rating": {
        "*": [
            "顾客评分{rating}星。",
            "{count}条评价，平均{rating}星。",
            "来自{count}条评价的{rating}星好评。",
        ],
    },
    "occasion": {
        "*": [
            "{occasion}正当时。",
            "{occasion}的好选择。",
            "为{occasion}做好准备。",
            "{occasion}送礼好主意。",
        ],
    },
    "urgency_stock": {
        "*": ["库存仅剩{stock}件。", "只剩{stock}件，欲购从速。", "库存紧张：仅剩{stock}件。"],
    },
    "urgency_date": {
        "*": ["{occasion}在{date}。", "记好日子：{occasion}在{date}。", "{occasion}于{date}结束。"],
    },
    "close": {
        "friendly": [
            "今天就来看看吧。",
            "希望你会喜欢。",
            "快来看看吧。",
            "有空的时候来逛逛吧。",
            "等你来发现。",
        ],
        "premium": ["诚邀您细细品鉴。", "静候您的光临。"],
        "urgent": ["立即下单。", "别再犹豫了。", "今天就入手吧。"],
        "playful": ["快去看看吧！", "犒劳一下自己吧！", "点一下就知道。"],
        "informative": ["详细信息请见产品页面。", "更多信息请访问我们的网站。"],
    },
    "signoff": {
        "friendly": ["祝好，\n{sender}", "期待再见，\n{sender}", "祝你开心，\n{sender}"],
        "premium": ["此致敬礼，\n{sender}", "谨上，\n{sender}"],
        "urgent": ["祝好，\n{sender}"],
        "playful": ["购物愉快！\n{sender}"],
        "informative": ["此致，\n{sender}"],
    },
    "signoff_anon": {
        "friendly": ["祝你生活愉快。", "期待与你再见。"],
        "premium": ["感谢您的垂阅。"],
        "urgent": ["感谢阅读。"],
        "playful": ["购物愉快！"],
        "informative": ["感谢您的关注。"],
    },
    "cta": {
        "friendly": ["去看看", "了解更多", "查看详情"],
        "premium": ["探索更多", "立即探索", "查看详情"],
        "urgent": ["立即购买", "马上下单", "立即抢购"],
        "playful": ["犒劳自己", "带我去看", "冲呀"],
        "informative": ["查看详情", "了解更多", "阅读更多"],
    },
    "subject": {
        "friendly": [
            "{first}，这是为你挑选的",
            "为你精选：{name}",
            "你可能会喜欢：{name}",
            "{first}，送你一个小推荐",
        ],
        "premium": ["{first}，为您甄选", "隆重推荐：{name}", "为您精选：{name}"],
        "urgent": [
            "{first}，别错过{name}",
            "仅剩{stock}件：{name}",
            "别再等了：{name}",
            "{occasion}即将到来",
        ],
        "playful": ["{first}，它在召唤你", "快看我们发现了什么", "下一个心头好？{name}"],
        "informative": ["{name}：产品详情", "关于{name}", "{name}，售价{price}"],
        "*": ["{occasion}好物：{name}", "{occasion}推荐：{name}"],
    },
    "push_title": {
        "friendly": ["{first}，这是为你准备的", "为你精选"],
        "premium": ["为您甄选", "精致之选"],
        "urgent": ["仅剩{stock}件", "千万别错过"],
        "playful": ["嘿，{first}！", "惊喜时间！"],
        "informative": ["产品详情", "关于{name}"],
        "*": ["{name}"],
    },
    "headline": {
        "friendly": ["为你精选", "快来看看"],
        "premium": ["精致之选", "用心甄选"],
        "urgent": ["仅剩{stock}件", "千万别错过", "今天下单"],
        "playful": ["犒劳一下自己", "新的心头好？"],
        "informative": ["查看详情", "了解更多"],
        "*": [
            "{name}",
            "仅需{price}",
            "选购{category}",
            "{brand}精选",
            "{occasion}好物",
            "{rating}星好评",
        ],
    },
    "sms_hook": {
        "*": ["{first}，为你精选：", "{first}，你好！", "为你精选："],
        "urgent": ["{first}，抓紧："],
    },
    "price": {"*": ["价格：{price}。", "售价{price}。", "仅需{price}。"]},
    "intro": {
        "*": [
            "{name}属于我们的{category}系列。",
            "来自{category}系列的{name}。",
            "{brand}出品的{name}。",
            "这是{name}。",
        ],
    },
}

ATTR: dict[str, list[str]] = {
    "material": ["材质：{value}。", "采用{value}制成。"],
    "color": ["颜色：{value}。"],
    "fit": ["版型：{value}。"],
    "size": ["尺码：{value}。"],
    "pattern": ["图案：{value}。"],
    "style": ["风格：{value}。"],
    "origin": ["产地：{value}。"],
    "*": ["{label}：{value}。"],
}
